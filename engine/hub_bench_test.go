package engine

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// sinkConn stands in for a gnet connection whose writes always succeed, so
// the hub's fan-out is measured without sockets.
type sinkConn struct {
	gnet.Conn
	written int
}

func (s *sinkConn) Write(p []byte) (int, error) { s.written += len(p); return len(p), nil }
func (s *sinkConn) OutboundBuffered() int       { return 0 }

// hubLoop is a loop holding n open connections of n/2 users.
func hubLoop(tb testing.TB, n int) *loop {
	l := benchLoop(tb)
	for i := range n {
		c := &Conn{gc: &sinkConn{}, loop: l, phase: phaseOpen, user: "user-" + strconv.Itoa(i/2)}
		l.add(c)
	}
	return l
}

// BenchmarkBroadcast compares the hub's one task per loop, which writes one
// shared frame to each connection, with what one AsyncWrite per connection
// costs the loop: a task allocated and queued per connection, then run.
func BenchmarkBroadcast(b *testing.B) {
	data := []byte(`{"headline":"turnstile ships","id":12345}`)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hub/%d", n), func(b *testing.B) {
			l := hubLoop(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if got := l.broadcast(encodeMessage(data)); got != n {
					b.Fatalf("targeted %d", got)
				}
			}
		})
		b.Run(fmt.Sprintf("task-per-conn/%d", n), func(b *testing.B) {
			l := hubLoop(b, n)
			queue := make([]func(), 0, n)
			b.ReportAllocs()
			for b.Loop() {
				queue = queue[:0]
				frame := encodeMessage(data) // shared, as in the hub
				for _, c := range l.conns {
					queue = append(queue, func() { l.push(c, frame) })
				}
				for _, task := range queue {
					task()
				}
			}
		})
	}
}

func BenchmarkPublishUser(b *testing.B) {
	data := []byte(`{"n":1}`)
	l := hubLoop(b, 10000)
	for _, c := range l.conns {
		subscribeNow(l, c, PersonalChannel(c.user))
	}
	var offset uint64
	b.ReportAllocs()
	for b.Loop() {
		offset++
		d := &delivery{channel: "#user-777", offset: offset, frame: encodeChannelMessage("#user-777", offset, data)}
		if got := l.deliver(d); got != 2 {
			b.Fatalf("targeted %d", got)
		}
	}
}

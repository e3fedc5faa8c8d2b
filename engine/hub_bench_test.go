package engine

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/engine/broker"
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
		c := &Conn{gc: &sinkConn{}, loop: l, phase: phaseOpen, personal: PersonalChannel("user-" + strconv.Itoa(i/2))}
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
		subscribeNow(l, c, c.personal)
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

// subscribedLoop is a loop holding n open connections, each subscribed
// (position known) to channel.
func subscribedLoop(tb testing.TB, n int, channel string) *loop {
	l := hubLoop(tb, n)
	for _, c := range l.conns {
		subscribeNow(l, c, channel)
	}
	return l
}

// BenchmarkChannelPublish compares a channel publication's loop task (the
// per-subscriber offset check, then the shared frame) with today's
// broadcast to the same connections: within 10% is the target.
func BenchmarkChannelPublish(b *testing.B) {
	data := []byte(`{"headline":"turnstile ships","id":12345}`)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("channel/%d", n), func(b *testing.B) {
			l := subscribedLoop(b, n, "news")
			var offset uint64
			b.ReportAllocs()
			for b.Loop() {
				offset++
				d := &delivery{channel: "news", offset: offset, frame: encodeChannelMessage("news", offset, data)}
				if got := l.deliver(d); got != n {
					b.Fatalf("targeted %d", got)
				}
			}
		})
		b.Run(fmt.Sprintf("broadcast/%d", n), func(b *testing.B) {
			l := hubLoop(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if got := l.broadcast(encodeMessage(data)); got != n {
					b.Fatalf("targeted %d", got)
				}
			}
		})
	}
}

// BenchmarkRecovery compares merging 100 missed messages into a
// subscription (finishSub with a history of 100) with 100 live deliveries
// to one subscriber.
func BenchmarkRecovery(b *testing.B) {
	data := []byte(`{"n":1}`)
	history := make([][]byte, 100)
	offsets := make([]uint64, 100)
	for i := range history {
		offsets[i] = uint64(i + 1)
		history[i] = encodeChannelMessage("news", offsets[i], data)
	}
	b.Run("recover-100-missed", func(b *testing.B) {
		l := hubLoop(b, 1)
		c := l.conns[0]
		b.ReportAllocs()
		for b.Loop() {
			lc := l.addSub(c, "news")
			ps := &pendingSub{ids: []cmdID{{n: 1, ok: true}}}
			l.pend[pendKey{c, lc}] = ps
			l.finishSub(c, lc, ps, subResult{pos: broker.Position{Offset: 100, Epoch: "e"}, rec: recoveryOK, history: history, offsets: offsets})
			if s := lc.subs[0]; s.pending || s.from != 100 {
				b.Fatalf("sub %+v", s)
			}
			l.removeSub(c, c.findSub([]byte("news")))
		}
	})
	b.Run("live-100", func(b *testing.B) {
		l := subscribedLoop(b, 1, "news")
		var offset uint64
		ds := make([]*delivery, 100)
		b.ReportAllocs()
		for b.Loop() {
			for i := range ds {
				offset++
				ds[i] = &delivery{channel: "news", offset: offset, frame: encodeChannelMessage("news", offset, data)}
			}
			for _, d := range ds {
				if l.deliver(d) != 1 {
					b.Fatal("not delivered")
				}
			}
		}
	})
}

// subscriptionBytes measures the heap one (connection, channel)
// subscription costs in the loop's index: conns connections, each on
// perConn channels shared among them.
func subscriptionBytes(tb testing.TB, conns, perConn int) float64 {
	l := hubLoop(tb, conns)
	names := make([]string, perConn)
	for i := range names {
		names[i] = "channel-" + strconv.Itoa(i)
	}
	for _, name := range names { // the loopChans and routes: per channel, not per subscription
		subscribeNow(l, l.conns[0], name)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range l.conns[1:] {
		for _, name := range names {
			subscribeNow(l, c, name)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(l)
	// Signed: garbage of earlier tests collected meanwhile can make the
	// heap shrink; the caller measures again then.
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64((conns-1)*perConn)
}

// measureSubscriptionBytes measures with enough subscriptions to stand
// out of the heap's noise, again if other garbage hid them.
func measureSubscriptionBytes(tb testing.TB, perConn int) float64 {
	conns := max(2000, 64000/perConn)
	per := subscriptionBytes(tb, conns, perConn)
	for try := 0; try < 3 && per <= 0; try++ {
		per = subscriptionBytes(tb, conns, perConn)
	}
	return per
}

// DESIGN's budget: at most 64 bytes per (connection, channel).
func TestSubscriptionMemory(t *testing.T) {
	for _, perConn := range []int{1, 8, 128} {
		if per := measureSubscriptionBytes(t, perConn); per > 64 || per <= 0 {
			t.Errorf("%d channels per connection: %.1f bytes per subscription, budget 64", perConn, per)
		} else {
			t.Logf("%d channels per connection: %.1f bytes per subscription", perConn, per)
		}
	}
}

func BenchmarkSubscriptionMemory(b *testing.B) {
	for _, perConn := range []int{1, 8, 128} {
		b.Run(fmt.Sprintf("per-conn-%d", perConn), func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = measureSubscriptionBytes(b, perConn)
			}
			b.ReportMetric(per, "B/sub")
		})
	}
}

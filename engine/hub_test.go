package engine

import (
	"bufio"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestPublishAndBroadcast(t *testing.T) {
	s, st := startServer(t, Config{Loops: 2})
	_, a1, _ := connect(t, s, st, "maggie")
	_, a2, _ := connect(t, s, st, "maggie")
	_, b, _ := connect(t, s, st, "bob")
	if n := s.PublishCount("maggie", []byte(`{"n":1}`)); n != 2 {
		t.Fatalf("Publish targeted %d, want 2", n)
	}
	if n := s.PublishCount("nobody", []byte(`1`)); n != 0 {
		t.Fatalf("Publish to nobody targeted %d", n)
	}
	if n := s.BroadcastCount([]byte(`"all"`)); n != 3 {
		t.Fatalf("Broadcast targeted %d, want 3", n)
	}
	for _, br := range []*bufio.Reader{a1, a2} {
		if f := readFrame(t, br); string(f.payload) != `{"type":"message","channel":"#maggie","offset":1,"data":{"n":1}}` {
			t.Fatalf("maggie got %q", f.payload)
		}
	}
	for _, br := range []*bufio.Reader{a1, a2, b} { // bob's first is the broadcast
		if f := readFrame(t, br); f.op != ws.OpText || string(f.payload) != `{"type":"message","data":"all"}` {
			t.Fatalf("got %q", f.payload)
		}
	}
	if st := s.Stats(); st.Publishes != 3 || st.OpenConns != 3 || st.Handshakes != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// Closed connections leave the hub.
func TestHubForgetsClosed(t *testing.T) {
	s, st := startServer(t, Config{})
	conn, br, _ := connect(t, s, st, "maggie")
	conn.Write(clientFrame(true, ws.OpClose, closePayload(1000, "")))
	expectClose(t, br, 1000)
	deadline := time.Now().Add(testTimeout)
	for s.Stats().OpenConns != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.PublishCount("maggie", []byte(`1`)); n != 0 {
		t.Fatalf("Publish after close targeted %d", n)
	}
}

// A client that stops reading is closed with 1008 while one that reads on
// keeps receiving.
func TestHubSlowConsumer(t *testing.T) {
	s, st := startServer(t, Config{MaxPendingBytes: 256 << 10, Loops: 1})
	slow := dial(t, s)
	slow.Write([]byte(upgradeRequest("/ws", st.add("slow"), "")))
	fastConn, fast, _ := connect(t, s, st, "fast")
	_ = fastConn

	var received atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := tryReadFrame(fast)
			if err != nil || f.op == ws.OpClose {
				return
			}
			received.Add(1)
		}
	}()
	payload := []byte(`"` + stringOf('x', 16<<10) + `"`)
	deadline := time.Now().Add(testTimeout)
	sent := 0
	for s.Stats().SlowConsumers == 0 && time.Now().Before(deadline) {
		s.BroadcastCount(payload)
		sent++
	}
	if s.Stats().SlowConsumers != 1 {
		t.Fatalf("no slow consumer after %d broadcasts", sent)
	}
	// The fast client still gets what follows.
	before := received.Load()
	s.PublishCount("fast", []byte(`"after"`))
	for received.Load() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if received.Load() == before {
		t.Fatal("fast client stopped receiving")
	}
	// The slow one finds a 1008 close (after what was queued) and EOF.
	br := bufio.NewReader(slow)
	readResponse(t, br)
	expectClose(t, br, ws.StatusPolicyViolation)
	fastConn.Close()
	<-done
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// subscribeNow subscribes c to channel on its loop with the position
// already known, as finishSub leaves it (tests only: no broker involved).
func subscribeNow(l *loop, c *Conn, channel string) {
	lc := l.addSub(c, channel)
	lc.subs[len(lc.subs)-1].pending = false
	lc.pending--
}

// The loop's indexes stay consistent whatever order connections leave in.
func TestHubIndexRemoveOrders(t *testing.T) {
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 0, 3, 1}}
	for _, order := range orders {
		l := benchLoop(t)
		cs := make([]*Conn, 4)
		for i := range cs {
			user := "a"
			if i == 3 {
				user = "b"
			}
			cs[i] = &Conn{gc: &sinkConn{}, loop: l, phase: phaseOpen, personal: PersonalChannel(user)}
			l.add(cs[i])
			subscribeNow(l, cs[i], "#"+user)
			subscribeNow(l, cs[i], "news")
		}
		left := map[*Conn]bool{cs[0]: true, cs[1]: true, cs[2]: true, cs[3]: true}
		var offset uint64
		for _, i := range order {
			l.remove(cs[i])
			delete(left, cs[i])
			wantA, wantB := 0, 0
			for c := range left {
				if c.User() == "a" {
					wantA++
				} else {
					wantB++
				}
			}
			offset++
			for _, tc := range []struct {
				channel string
				want    int
			}{{"#a", wantA}, {"#b", wantB}, {"news", len(left)}} {
				d := &delivery{channel: tc.channel, offset: offset, frame: encodeChannelMessage(tc.channel, offset, []byte("1"))}
				if got := l.deliver(d); got != tc.want {
					t.Fatalf("order %v after removing %d: %s has %d, want %d", order, i, tc.channel, got, tc.want)
				}
			}
			if got := l.broadcast(encodeMessage([]byte("1"))); got != len(left) {
				t.Fatalf("order %v: broadcast reached %d, want %d", order, got, len(left))
			}
			for j, c := range l.conns {
				if int(c.index) != j {
					t.Fatalf("conns[%d].index = %d", j, c.index)
				}
			}
			for c := range left {
				for k, cs := range c.subs {
					if s := cs.lc.subs[cs.si]; s.c != c || int(s.ci) != k {
						t.Fatalf("order %v: index of %s broken", order, cs.lc.name)
					}
				}
			}
		}
		if len(l.chans) != 0 || l.srv.hub.routes.Size() != 0 {
			t.Fatalf("order %v: channels left %v, routes %d", order, l.chans, l.srv.hub.routes.Size())
		}
	}
}

// TestRouteManyLoops: with more than 64 loops two loops share a mask bit,
// and the bit stays set until both let go of the channel.
func TestRouteManyLoops(t *testing.T) {
	for _, loops := range []int{2, 65} {
		s, err := New(Config{Store: fixedStore{}, Loops: loops})
		if err != nil {
			t.Fatal(err)
		}
		h := s.hub
		r := h.hold("news", 1)
		if loops > 64 {
			h.hold("news", 65) // the same bit as loop 1
			h.unhold("news", 1)
			if r.mask.Load()&loopBit(1) == 0 {
				t.Fatalf("%d loops: bit cleared while loop 65 still holds the channel", loops)
			}
			h.unhold("news", 65)
		} else {
			if r.holders != nil {
				t.Fatalf("%d loops: route allocated per-bit counts", loops)
			}
			h.unhold("news", 1)
		}
		if _, ok := h.routes.Load("news"); ok {
			t.Fatalf("%d loops: route kept after every loop let go", loops)
		}
	}
}

package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// captureConn records every frame written to it, for tests of the loop's
// merge logic without sockets; writes counts the writes (a write may hold
// several frames).
type captureConn struct {
	gnet.Conn
	frames []string
	writes int
	// stuck: a client that reads nothing, so everything written stays
	// queued (OutboundBuffered grows).
	stuck  bool
	queued int
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.writes++
	if c.stuck {
		c.queued += len(p)
	}
	for rest := p; len(rest) > 0; {
		h, n, _ := parseHeader(rest)
		if n == 0 || int64(len(rest)-n) < h.Length {
			c.frames = append(c.frames, fmt.Sprintf("partial:%q", rest))
			break
		}
		if h.OpCode == ws.OpText {
			c.frames = append(c.frames, string(rest[n:n+int(h.Length)]))
		} else {
			c.frames = append(c.frames, fmt.Sprintf("op:%d", h.OpCode))
		}
		rest = rest[n+int(h.Length):]
	}
	return len(p), nil
}
func (c *captureConn) OutboundBuffered() int { return c.queued }

func newsDelivery(offset uint64) *delivery {
	return &delivery{channel: "news", offset: offset, epoch: "e", frame: encodeChannelMessage("news", offset, []byte(`"m"`))}
}

// Live publications that arrive while a subscription's position is read
// are buffered and merged by offset: what the position already covers is
// dropped, the rest follows the reply in order, and nothing is lost or
// sent twice.
func TestPendingMerge(t *testing.T) {
	cases := []struct {
		name     string
		buffered []uint64 // arrived while pending
		res      subResult
		after    []uint64 // arrive once live
		want     []string
	}{
		{"position covers part of the buffer", []uint64{3, 4, 5}, subResult{pos: broker.Position{Offset: 3, Epoch: "e"}},
			[]uint64{5, 6}, []string{`"subscribed"`, `"offset":4`, `"offset":5`, `"offset":6`}},
		{"position ahead of every buffered one", []uint64{2, 3}, subResult{pos: broker.Position{Offset: 4, Epoch: "e"}},
			[]uint64{4, 5}, []string{`"subscribed"`, `"offset":5`}},
		{"history then buffer overlapping it", []uint64{4, 5, 6}, subResult{pos: broker.Position{Offset: 5, Epoch: "e"}, rec: recoveryOK,
			history: [][]byte{newsDelivery(4).frame, newsDelivery(5).frame}, offsets: []uint64{4, 5}},
			[]uint64{7}, []string{`"recovered":true,"missed":2`, `"offset":4`, `"offset":5`, `"offset":6`, `"offset":7`}},
		{"recovered:false sends no history, then the live ones", []uint64{9}, subResult{pos: broker.Position{Offset: 9, Epoch: "e"}, rec: recoveryFalse},
			[]uint64{10}, []string{`"recovered":false`, `"offset":10`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := benchLoop(t)
			cc := &captureConn{}
			c := &Conn{gc: cc, loop: l, phase: phaseOpen, personal: "#u"}
			l.add(c)
			lc := l.addSub(c, "news")
			ps := &pendingSub{ids: []cmdID{{n: 1, ok: true}}}
			l.pend[pendKey{c, lc}] = ps
			for _, o := range tc.buffered {
				l.deliver(newsDelivery(o))
			}
			if len(cc.frames) != 0 {
				t.Fatalf("wrote %q while pending", cc.frames)
			}
			l.finishSub(c, lc, ps, tc.res)
			if cc.writes != 1 {
				t.Fatalf("the reply, missed and buffered messages took %d writes, want 1: %q", cc.writes, cc.frames)
			}
			for _, o := range tc.after {
				l.deliver(newsDelivery(o))
			}
			if len(cc.frames) != len(tc.want) {
				t.Fatalf("frames %q, want %d matching %q", cc.frames, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(cc.frames[i], w) {
					t.Fatalf("frame %d %q, want %s (all: %q)", i, cc.frames[i], w, cc.frames)
				}
			}
		})
	}
}

// Gathering a recovery into one write keeps send's rule: against a client
// that reads nothing, exactly the frames that one-by-one sends would have
// queued go out (the first always; each next one while the queue stays
// within MaxPendingBytes), then the 1008, and nothing after it.
func TestRecoveryWriteKeepsPendingRule(t *testing.T) {
	for _, limit := range []int{1, 200, 500, 1 << 20} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			l := benchLoop(t)
			l.srv.cfg.MaxPendingBytes = limit
			cc := &captureConn{stuck: true}
			c := &Conn{gc: cc, loop: l, phase: phaseOpen, personal: "#u"}
			l.add(c)
			lc := l.addSub(c, "news")
			ps := &pendingSub{ids: []cmdID{{n: 1, ok: true}}}
			l.pend[pendKey{c, lc}] = ps
			res := subResult{pos: broker.Position{Offset: 12, Epoch: "e"}, rec: recoveryOK}
			for o := uint64(3); o <= 12; o++ {
				res.history = append(res.history, newsDelivery(o).frame)
				res.offsets = append(res.offsets, o)
			}
			l.finishSub(c, lc, ps, res)

			// One by one: the reply, then each missed message.
			reply := appendFrame(nil, true, ws.OpText, appendSubscribed(nil, cmdID{n: 1, ok: true}, "news",
				position{offset: 12, epoch: "e"}, recoveryOK, len(res.history)))
			sizes := []int{len(reply)}
			for _, f := range res.history {
				sizes = append(sizes, len(f))
			}
			want, q := 0, 0
			for _, n := range sizes {
				if q > 0 && q+n > limit {
					break
				}
				q += n
				want++
			}
			got := 0
			for _, f := range cc.frames {
				if strings.HasPrefix(f, "op:") {
					break
				}
				got++
			}
			if got != want {
				t.Fatalf("%d frames before the close, want %d as one by one (%q)", got, want, cc.frames)
			}
			slow := want < len(sizes)
			if slow != (c.closeReason == CloseSlowConsumer) || (slow && cc.frames[len(cc.frames)-1] != fmt.Sprintf("op:%d", ws.OpClose)) {
				t.Fatalf("limit %d: slow %v, close reason %v, frames %q", limit, slow, c.closeReason, cc.frames)
			}
		})
	}
}

// A subscription whose buffer passes maxBuffered while pending closes its
// connection as a slow consumer (1008) rather than leave a gap.
func TestPendingOverflowCloses(t *testing.T) {
	l := benchLoop(t)
	cc := &captureConn{}
	c := &Conn{gc: cc, loop: l, phase: phaseOpen, personal: "#u"}
	l.add(c)
	lc := l.addSub(c, "news")
	ps := &pendingSub{ids: []cmdID{{n: 1, ok: true}}}
	l.pend[pendKey{c, lc}] = ps
	for o := uint64(1); o <= maxBuffered+1; o++ {
		l.deliver(newsDelivery(o))
	}
	if c.phase != phaseClosing || c.closeReason != CloseSlowConsumer || len(c.subs) != 0 || !ps.cancelled {
		t.Fatalf("phase %v reason %v subs %d cancelled %v", c.phase, c.closeReason, len(c.subs), ps.cancelled)
	}
	if len(ps.buf) != maxBuffered {
		t.Fatalf("buffered %d, bound %d", len(ps.buf), maxBuffered)
	}
	// The late result finds it cancelled and writes nothing more.
	n := len(cc.frames)
	l.finishSub(c, lc, ps, subResult{pos: broker.Position{Offset: 1, Epoch: "e"}})
	if len(cc.frames) != n {
		t.Fatalf("wrote %q after the close", cc.frames[n:])
	}
}

// An unsubscribe while the subscribe is pending cancels it: the subscribe
// is answered with an error, the unsubscribe with unsubscribed, and the
// late result delivers nothing.
func TestUnsubscribeWhilePending(t *testing.T) {
	l := benchLoop(t)
	cc := &captureConn{}
	c := &Conn{gc: cc, loop: l, phase: phaseOpen, personal: "#u", grants: []string{"*"}}
	l.add(c)
	lc := l.addSub(c, "news")
	ps := &pendingSub{ids: []cmdID{{n: 1, ok: true}}}
	l.pend[pendKey{c, lc}] = ps
	l.unsubscribe(c, &command{typ: cmdUnsubscribe, id: cmdID{n: 2, ok: true}, channel: []byte("news"), hasChan: true})
	if len(cc.frames) != 2 || !strings.Contains(cc.frames[0], `"type":"error","id":1`) || !strings.Contains(cc.frames[1], `"type":"unsubscribed","id":2`) {
		t.Fatalf("frames %q", cc.frames)
	}
	l.finishSub(c, lc, ps, subResult{pos: broker.Position{Offset: 1, Epoch: "e"}})
	l.deliver(newsDelivery(2))
	if len(cc.frames) != 2 || len(c.subs) != 0 || len(l.chans) != 0 {
		t.Fatalf("after the late result: frames %q subs %d chans %d", cc.frames, len(c.subs), len(l.chans))
	}
}

package engine

import (
	"context"
	"errors"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// maxBuffered bounds the live publications kept for one subscription while
// its position is read. Past it the connection is closed as a slow
// consumer (1008): it reconnects and recovers, where dropping would leave
// a gap and replying recovered:false would lose live messages too.
const maxBuffered = 1024

// pendingSub is a subscription waiting for its position from the broker.
type pendingSub struct {
	ids      []cmdID // replies owed: the subscribe, and repeats meanwhile
	since    *broker.Position
	buf      []*delivery // live publications that arrived meanwhile, in order
	personal bool        // the personal channel of a connection awaiting its welcome
	// head is written before the reply, in the same write: the 101 of an
	// upgrade whose welcome is known at once (an in-process broker).
	head      []byte
	cancelled bool // unsubscribed or closed meanwhile: drop, then release
}

// subResult is what the broker said, handed back to the loop.
type subResult struct {
	err      error // nil, or why the subscription failed (not unrecoverable)
	acquired bool  // the node-level acquire succeeded: it must be released
	pos      broker.Position
	rec      recovery
	history  [][]byte // encoded frames of the missed messages, in order
	offsets  []uint64 // their offsets
}

// startSub subscribes c to channel: pending in the index now, the broker
// asked off the loop, the result merged back on the loop by finishSub.
// An in-process broker is asked at once, and finishSub runs before
// startSub returns.
func (l *loop) startSub(c *Conn, channel string, id cmdID, since *broker.Position) {
	lc := l.addSub(c, channel)
	h := l.srv.hub
	if h.inProcess {
		ps := pendingSub{ids: []cmdID{id}, since: since}
		l.finishSub(c, lc, &ps, h.resolve(channel, since))
		return
	}
	ps := &pendingSub{ids: []cmdID{id}, since: since}
	l.startAsync(c, lc, ps)
}

// welcome subscribes c to its personal channel and welcomes it with the
// position (and, with since, what it missed). With an in-process broker
// the welcome is ready at once and leaves in one write after head, the
// 101; else head is written now and the welcome follows from finishSub.
func (l *loop) welcome(c *Conn, head []byte, since *broker.Position) {
	channel := c.personal
	h := l.srv.hub
	if h.inProcess {
		lc := l.addSub(c, channel)
		ps := pendingSub{since: since, personal: true, head: head}
		l.finishSub(c, lc, &ps, h.resolve(channel, since))
		return
	}
	if !l.send(c, head) {
		return
	}
	lc := l.addSub(c, channel)
	l.startAsync(c, lc, &pendingSub{since: since, personal: true})
}

// startAsync asks the broker for ps off the loop; finishSub merges the
// answer back on the loop.
func (l *loop) startAsync(c *Conn, lc *loopChan, ps *pendingSub) {
	channel := lc.name
	l.pend[pendKey{c, lc}] = ps
	h := l.srv.hub
	go func() {
		res := h.resolve(channel, ps.since)
		task := func(context.Context) error {
			l.finishSub(c, lc, ps, res)
			if ps.personal && c.phase == phaseOpen && c.gc.InboundBuffered() > 0 {
				// Welcomed: what the client sent meanwhile is frames.
				if l.readFrames(c) != gnet.None {
					l.closeNow(c)
				}
			}
			return nil
		}
		if l.el.Execute(context.Background(), runnable(task)) != nil && res.acquired {
			h.release([]string{channel}) // the loop is gone
		}
	}()
}

// resolve subscribes the node if needed, then reads the position or the
// history after since. Off the loop, unless the broker is in-process (it
// then needs no timeout either).
func (h *hub) resolve(channel string, since *broker.Position) (res subResult) {
	ctx := context.Background()
	if !h.inProcess {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, brokerTimeout)
		defer cancel()
	}
	if res.err = h.acquire(ctx, channel); res.err != nil {
		return res
	}
	res.acquired = true
	if since == nil {
		res.pos, res.err = h.broker.Position(ctx, channel)
		return res
	}
	pubs, pos, err := h.broker.History(ctx, channel, *since)
	res.pos = pos
	switch {
	case errors.Is(err, broker.ErrUnrecoverable):
		res.rec = recoveryFalse
	case err != nil:
		res.err = err
	default:
		res.rec = recoveryOK
		res.history = make([][]byte, len(pubs))
		res.offsets = make([]uint64, len(pubs))
		for i, p := range pubs {
			res.history[i] = encodeChannelMessage(channel, p.Offset, p.Data)
			res.offsets[i] = p.Offset
		}
	}
	return res
}

// finishSub merges a subscription's result on the loop: the reply (or the
// welcome), then the missed messages, then what was buffered meanwhile,
// each offset at most once and in order.
func (l *loop) finishSub(c *Conn, lc *loopChan, ps *pendingSub, res subResult) {
	if ps.cancelled || c.phase == phaseClosed {
		if res.acquired {
			l.release(lc.name)
		}
		return
	}
	delete(l.pend, pendKey{c, lc})
	i := c.findSub([]byte(lc.name))
	if i < 0 { // cannot happen: a removed subscription is cancelled
		return
	}
	if res.err != nil {
		l.removeSub(c, i)
		if res.acquired {
			l.release(lc.name)
		}
		if ps.personal {
			if ps.head == nil || l.send(c, ps.head) {
				l.closeLater(c, CloseBrokerUnavailable)
			}
			return
		}
		for _, id := range ps.ids {
			l.reply(c, appendError(l.body[:0], id, codeUnavailable, reasonUnavailable))
		}
		l.counters.commands[cmdSubscribe][resultError].Add(uint64(len(ps.ids)))
		return
	}
	s := &lc.subs[c.subs[i].si]
	s.pending = false
	lc.pending--
	if lc.epoch != res.pos.Epoch {
		lc.epoch = res.pos.Epoch
	}
	pos := position{offset: res.pos.Offset, epoch: res.pos.Epoch}
	missed := len(res.history)
	if ps.personal {
		var id [64]byte
		l.body = appendWelcome(l.body[:0], c.User(), c.appendID(id[:0]), lc.name, pos, res.rec, missed)
	} else {
		l.body = appendSubscribed(l.body[:0], ps.ids[0], lc.name, pos, res.rec, missed)
	}
	switch res.rec {
	case recoveryOK:
		l.counters.recoveries[recoveredTrue].Add(1)
	case recoveryFalse:
		l.counters.recoveries[recoveredFalse].Add(1)
	}
	if !ps.personal {
		l.counters.commands[cmdSubscribe][resultOK].Add(1)
	}
	// The 101 (if any), the reply, the missed messages and what came
	// meanwhile leave together: one write, not one per frame.
	k := l.cork(c, ps.head)
	if !l.corkFrame(&k, l.body) {
		return
	}
	last := res.pos.Offset
	for j, frame := range res.history {
		if !l.corkPush(&k, frame) {
			return
		}
		last = max(last, res.offsets[j])
	}
	for _, d := range ps.buf {
		if d.offset > last {
			if !l.corkPush(&k, d.z.frameFor(c, d.frame)) {
				return
			}
			last = d.offset
		}
	}
	if !l.flush(&k) {
		return
	}
	// The subscription may have moved in the index while we wrote.
	if i = c.findSub([]byte(lc.name)); i >= 0 {
		lc.subs[c.subs[i].si].from = last
	}
	for _, id := range ps.ids[min(1, len(ps.ids)):] { // repeats: idempotent
		l.reply(c, appendSubscribed(l.body[:0], id, lc.name, position{offset: max(last, lc.last), epoch: lc.epoch}, recoveryNone, 0))
		l.counters.commands[cmdSubscribe][resultOK].Add(1)
	}
	if ps.personal && c.phase == phaseWelcome {
		// Frames the client sent before its welcome waited in gnet's
		// buffer: whoever ran the welcome reads them now (OnTraffic or the
		// redeem's task after the handshake, startAsync's task after this).
		c.phase = phaseOpen
	}
}

// reply writes one server frame with body to c; false if c is gone.
func (l *loop) reply(c *Conn, body []byte) bool {
	l.out = appendFrame(l.out[:0], true, ws.OpText, body)
	l.push(c, l.out)
	return c.phase == phaseOpen || c.phase == phaseWelcome
}

// release undoes the node-level acquire of each channel: on the loop for an
// in-process broker (a few locks), else on a goroutine of its own.
func (l *loop) release(channels ...string) {
	if l.srv.hub.inProcess {
		l.srv.hub.release(channels)
		return
	}
	go l.srv.hub.release(channels)
}

// deliverTask is the loop task that writes one publication to the loop's
// subscribers of its channel.
func (l *loop) deliverTask(d *delivery) gnet.Runnable {
	return runnable(func(context.Context) error {
		l.deliver(d)
		return nil
	})
}

// deliver writes d to every live subscriber on this loop whose last
// offset is below it, and buffers it for those still pending.
func (l *loop) deliver(d *delivery) int {
	lc := l.chans[d.channel]
	if lc == nil {
		return 0
	}
	if d.epoch != lc.epoch && lc.epoch != "" && lc.pending < len(lc.subs) {
		// The channel's history was lost (a flushed backend): offsets start
		// again, so the live subscribers take the new stream from here.
		for i := range lc.subs {
			if !lc.subs[i].pending {
				lc.subs[i].from = d.offset - 1
			}
		}
		lc.epoch, lc.last = d.epoch, 0
	}
	lc.last = max(lc.last, d.offset)
	n := 0
	// Backwards: a write that fails closes its connection, whose removal
	// moves the last (already visited) subscriber into its slot.
	for i := len(lc.subs) - 1; i >= 0; i-- {
		if i >= len(lc.subs) {
			continue
		}
		s := &lc.subs[i]
		c := s.c
		if s.pending {
			if ps := l.pend[pendKey{c, lc}]; ps != nil {
				if len(ps.buf) >= maxBuffered {
					l.closeSlow(c)
					continue
				}
				ps.buf = append(ps.buf, d)
			}
			continue
		}
		if d.offset <= s.from || c.phase != phaseOpen {
			continue
		}
		n++
		l.push(c, d.z.frameFor(c, d.frame))
	}
	return n
}

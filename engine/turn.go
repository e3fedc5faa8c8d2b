package engine

import (
	"context"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

// One client's turn on its event loop is bounded, so that a client flooding
// tiny frames or pings cannot starve the other connections of the loop: a
// turn handles at most framesPerTurn frames or about bytesPerTurn bytes,
// then the rest waits for a resume task queued behind the loop's other
// events. A client whose unread input still grows past inboundLimit sends
// faster than its share and is closed (CloseInputFlood), since gnet keeps
// reading into an unbounded buffer.
const (
	framesPerTurn = 256
	bytesPerTurn  = 64 << 10
	inboundSlack  = 1 << 20 // inbound bytes allowed beyond one largest frame

	// resumeDelay is how long a connection that used up a resumed turn
	// waits for the next one, at least (resumeLater).
	resumeDelay = 100 * time.Microsecond
)

// inboundLimit is how much unread input a connection may have after its
// turn.
func (l *loop) inboundLimit() int {
	return l.srv.cfg.MaxMessageBytes + maxHeaderLen + inboundSlack
}

// resumeLater queues c for another turn behind the loop's other work.
//
// A resume task is a turn only if the loop polls its sockets before it
// runs: gnet runs every task queued while it runs its tasks in the same
// pass, before it polls again. A resume task queued from a resume task
// therefore chained a flooder's turns until its whole inbound buffer was
// drained (measured in BenchmarkEchoUnderFlood: 84 turns in a row, 2.4 ms
// on average and up to 23 ms, during which no other connection of the loop
// was read). So the connections that need another turn after a resume pass
// are queued by a timer instead, resumeDelay later: its task arrives from
// outside the pass. (With a delay of 0 the timer fires on another P
// while the pass still runs, and the chains were back: up to 245 turns
// with the victim's frame unread in the kernel.)
func (l *loop) resumeLater(c *Conn) {
	if c.resumeQueued {
		return
	}
	c.resumeQueued = true
	l.resume = append(l.resume, c)
	if !l.resumeQueued { // else runResume, or a task already queued, takes it
		l.resumeQueued = true
		if l.el.Execute(context.Background(), l.resumeTask) != nil {
			l.resumeQueued = false // the loop is stopping
		}
	}
}

// runResume gives every queued connection its next turn. Runs on the loop.
func (l *loop) runResume() {
	l.resumeQueued = true // turns that need another one only append
	batch := l.resume
	l.resume = l.resumeSpare[:0]
	for i, c := range batch {
		batch[i] = nil
		c.resumeQueued = false
		if c.phase != phaseOpen && c.phase != phaseClosing {
			continue
		}
		if l.readFrames(c) == gnet.Close {
			l.closeNow(c)
		}
	}
	l.resumeSpare = batch[:0]
	if len(l.resume) == 0 {
		l.resumeQueued = false
		return
	}
	if l.resumeTimer == nil {
		l.resumeTimer = time.AfterFunc(resumeDelay, l.queueResume)
	} else {
		l.resumeTimer.Reset(resumeDelay)
	}
}

// queueResume queues the resume task from the timer's goroutine, outside
// the loop's task pass. If the loop is stopping, resumeQueued stays set:
// nothing runs on it any more.
func (l *loop) queueResume() {
	_ = l.el.Execute(context.Background(), l.resumeTask)
}

// The frames a turn answers with (pongs, echoes) are gathered in the loop's
// batch and leave in one write when the turn ends, or before a close, so a
// flood of small frames costs one syscall per turn, not one per frame.

// queuePong answers a ping in the turn's batch. While the client has not
// read what is already queued for it, a new ping replaces a pong still
// pending at the end of the batch instead of adding to it (RFC 6455 5.5.3
// allows answering only the most recent ping): a ping flood from a client
// that does not read costs one queued pong per turn.
func (l *loop) queuePong(c *Conn, payload []byte) {
	if l.batchPong >= 0 && c.gc.OutboundBuffered() > 0 {
		l.batch = l.batch[:l.batchPong]
	}
	l.batchPong = len(l.batch)
	l.batch = appendFrame(l.batch, true, ws.OpPong, payload)
}

// queueEcho echoes a data message in the turn's batch.
func (l *loop) queueEcho(op ws.OpCode, msg []byte) {
	l.batch = appendFrame(l.batch, true, op, msg)
	l.batchPong = -1
	l.batchMsgs++
}

// flushBatch writes the turn's batch, through the outbound limit.
func (l *loop) flushBatch(c *Conn) {
	if len(l.batch) == 0 {
		return
	}
	if c.phase == phaseOpen && l.send(c, l.batch) {
		l.counters.messagesOut.Add(uint64(l.batchMsgs))
	}
	l.resetBatch()
}

func (l *loop) resetBatch() {
	l.batch, l.batchPong, l.batchMsgs = l.batch[:0], -1, 0
}

// corked gathers frames for one connection so that they leave in one
// write rather than one each: a subscription's reply and the messages it
// recovers, a welcome after its 101. A frame joins only if send would let
// it through with what is gathered already queued, so gathering never
// lets more wait than sending one by one would; one that would not fit
// goes after a flush of what is gathered, through send and its rule.
type corked struct {
	c      *Conn
	buf    []byte // the loop's cork buffer
	frames int    // data frames in buf, for messagesOut
}

// cork starts gathering for c after head (raw bytes, may be nil: the 101).
func (l *loop) cork(c *Conn, head []byte) corked {
	return corked{c: c, buf: append(l.corkBuf[:0], head...)}
}

// corkFrame adds one server text frame carrying body; false if c is gone.
func (l *loop) corkFrame(k *corked, body []byte) bool {
	l.out = appendFrame(l.out[:0], true, ws.OpText, body)
	return l.corkPush(k, l.out)
}

// corkPush adds one whole data frame; false if c is gone.
func (l *loop) corkPush(k *corked, frame []byte) bool {
	if l.overCork(k, len(frame)) {
		if !l.flush(k) {
			return false
		}
		l.push(k.c, frame)
		return k.c.phase == phaseOpen || k.c.phase == phaseWelcome
	}
	k.buf = append(k.buf, frame...)
	k.frames++
	return true
}

// overCork says whether n more bytes would take what c has queued, with
// what is gathered, past MaxPendingBytes (send's rule).
func (l *loop) overCork(k *corked, n int) bool {
	q := k.c.gc.OutboundBuffered() + len(k.buf)
	return q > 0 && q+n > l.srv.cfg.MaxPendingBytes
}

// flush writes what k gathered, in one write; false if c is gone. Every
// frame in it passed send's rule as it joined.
func (l *loop) flush(k *corked) bool {
	if len(k.buf) > 0 {
		if !l.write(k.c, k.buf) {
			return false
		}
		l.counters.messagesOut.Add(uint64(k.frames))
	}
	if cap(k.buf) > 256<<10 { // do not keep a one-off large batch
		k.buf = nil
	}
	l.corkBuf, k.buf, k.frames = k.buf[:0], k.buf[:0], 0
	return k.c.phase == phaseOpen || k.c.phase == phaseWelcome
}

// send writes one frame for the client unless it would take c's queue past
// MaxPendingBytes: then c is a slow consumer and is closed with 1008
// instead, the close frame queued right after the last whole frame so that
// a client that still reads gets it. Every outbound frame but the close
// goes through here (welcome, pong, ping, echo, push), so the limit has one
// rule. It reports whether the frame was written.
func (l *loop) send(c *Conn, frame []byte) bool {
	if q := c.gc.OutboundBuffered(); q > 0 && q+len(frame) > l.srv.cfg.MaxPendingBytes {
		l.closeSlow(c)
		return false
	}
	return l.write(c, frame)
}

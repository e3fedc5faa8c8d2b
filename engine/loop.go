package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

// loop is the engine's state for one gnet event loop. Everything but the
// counters and sweepQueued is touched only on that loop's goroutine.
type loop struct {
	srv   *Server
	el    gnet.EventLoop
	index int

	counters loopCounters

	up  ws.Upgrader      // built once for this loop; its callbacks write hs
	hs  handshakeScratch // the handshake in progress
	out []byte           // scratch for frames we write
	// corkBuf is the buffer of corked (turn.go): frames gathered for one
	// connection, written at once.
	corkBuf []byte

	conns []*Conn                 // open and closing connections, for fan-out and sweeps
	chans map[string]*loopChan    // channel -> its subscribers here (index.go)
	pend  map[pendKey]*pendingSub // subscriptions waiting for the broker
	// lastSeq is the newest connection sequence number given out on this
	// loop (written on the loop only; read by Disconnect, to close only
	// what was open when it was asked).
	lastSeq atomic.Uint64

	parser cmdParser // commands (command.go)
	body   []byte    // scratch for the JSON body of a frame we write

	// Handshake deadlines are monotonic in accept order, so a FIFO holds them.
	pending     []deadline
	pendingHead int
	// Connections we sent a close to outside OnTraffic get closeGrace to
	// read what is queued before TCP is closed; also a FIFO.
	closing     []deadline
	closingHead int
	cursor      int // next connection for the amortised idle/ping check

	sweepQueued atomic.Bool
	sweepTask   gnet.RunnableFunc

	// Bounded turns (turn.go): connections waiting for another turn, and
	// the frames the turn in progress answers with.
	resume, resumeSpare []*Conn
	resumeQueued        bool
	resumeTask          gnet.RunnableFunc
	batch               []byte // the turn's pongs and echoes, written at its end
	batchPong           int    // offset of a pong ending batch; -1: none
	batchMsgs           int    // echoes in batch

	resumeTimer *time.Timer // queues resumeTask after a resume pass (turn.go)

	quota *quotaFuncs // MaxConnsPerUser's callbacks for this loop

	utf8Buf [4096]byte // unmasked copy of an incomplete frame's new text

	inflated []byte // the last inflated client message (deflate.go)
	scanExt  func(int, []byte, []byte, []byte) httphead.Control
}

type deadline struct {
	c  *Conn
	at int64
}

func newLoop(s *Server, el gnet.EventLoop, index int) *loop {
	l := &loop{srv: s, el: el, index: index, batchPong: -1,
		chans: make(map[string]*loopChan), pend: make(map[pendKey]*pendingSub)}
	l.quota = newQuotaFuncs(s.cfg.MaxConnsPerUser)
	l.up = l.newUpgrader()
	l.sweepTask = func(context.Context) error {
		l.sweepQueued.Store(false)
		l.sweep()
		return nil
	}
	l.resumeTask = func(context.Context) error {
		l.runResume()
		return nil
	}
	return l
}

// add puts an upgraded connection in the loop's list; its subscriptions
// are in the index (index.go).
func (l *loop) add(c *Conn) {
	c.index = int32(len(l.conns))
	l.conns = append(l.conns, c)
}

// remove takes a connection out of the loop's list and index (from OnClose).
func (l *loop) remove(c *Conn) {
	last := len(l.conns) - 1
	if i := int(c.index); i >= 0 && i <= last && l.conns[i] == c {
		l.conns[i] = l.conns[last]
		l.conns[i].index = int32(i)
		l.conns[last] = nil
		l.conns = l.conns[:last]
		if l.cursor > len(l.conns) {
			l.cursor = 0
		}
	}
	c.index = -1
	l.removeAllSubs(c)
	if cap(l.conns) > 64 && len(l.conns) < cap(l.conns)/4 {
		l.conns = append([]*Conn(nil), l.conns...)
	}
}

// write writes p to c in one call. It reports false when the write failed,
// in which case gnet has closed the connection and c must not be used.
func (l *loop) write(c *Conn, p []byte) bool {
	if _, err := c.gc.Write(p); err != nil || c.phase == phaseClosed {
		return false
	}
	return true
}

// sendClose writes r's close frame and marks c as closing for r.
func (l *loop) sendClose(c *Conn, r CloseReason) {
	l.sendCloseCode(c, r, r.Code())
}

// sendCloseCode writes a close frame with code (an echoed client close) and
// r's text, and marks c as closing for r.
func (l *loop) sendCloseCode(c *Conn, r CloseReason, code ws.StatusCode) {
	l.out = appendClose(l.out[:0], code, r.Text())
	c.phase = phaseClosing
	c.closeReason = r
	l.removeAllSubs(c) // nothing more is delivered to it
	_, _ = c.gc.Write(l.out)
}

// closeNow closes c from a loop task (not from OnTraffic, which returns
// gnet.Close instead). OnClose runs before it returns.
func (l *loop) closeNow(c *Conn) {
	if c.phase != phaseClosed {
		_ = l.el.Close(c.gc)
	}
}

// closeGrace is how long a connection we close from a loop task (idle,
// slow consumer) may take to read what is queued before TCP is closed. No
// more frames are queued for it meanwhile.
const closeGrace = time.Second

// closeLater sends a close frame now and closes TCP after closeGrace (or
// when the client answers), so the close frame is not cut off by the reset
// of a socket closed with unsent data.
func (l *loop) closeLater(c *Conn, r CloseReason) {
	l.sendClose(c, r)
	if c.phase == phaseClosing {
		l.closing = append(l.closing, deadline{c: c, at: l.srv.now() + int64(closeGrace)})
	}
}

// closeSlow closes a slow consumer with 1008.
func (l *loop) closeSlow(c *Conn) {
	l.counters.slowConsumers.Add(1)
	l.closeLater(c, CloseSlowConsumer)
}

// expire pops the FIFO entries whose deadline passed and closes those of
// them still in phase.
func (l *loop) expire(q *[]deadline, head *int, now int64, phase connPhase, reason RejectReason) {
	for *head < len(*q) && (*q)[*head].at <= now {
		c := (*q)[*head].c
		(*q)[*head] = deadline{}
		*head++
		if c.phase == phase {
			if phase == phaseHandshake {
				l.counters.rejected[reason].Add(1)
				l.counters.closes[CloseHandshakeTimeout].Add(1)
				l.srv.closeLog.handshake(c, CloseHandshakeTimeout)
			}
			l.closeNow(c)
		}
	}
	if *head > 0 && *head*2 >= len(*q) {
		n := copy(*q, (*q)[*head:])
		clear((*q)[n:])
		*q = (*q)[:n]
		*head = 0
		if cap(*q) > 1024 && n < cap(*q)/4 { // give a burst's memory back
			*q = append([]deadline(nil), *q...)
		}
	}
}

// sweep runs on the loop every tick: it closes handshakes past their
// deadline and checks a share of the open connections for idleness, so that
// each is checked about once per checkEvery.
func (l *loop) sweep() {
	s := l.srv
	now := s.now()
	l.expire(&l.pending, &l.pendingHead, now, phaseHandshake, RejectTimeout)
	l.expire(&l.closing, &l.closingHead, now, phaseClosing, 0)
	n := len(l.conns)
	if n == 0 {
		return
	}
	budget := n
	if s.checkEvery > s.tick {
		budget = int((int64(n)*int64(s.tick) + int64(s.checkEvery) - 1) / int64(s.checkEvery))
	}
	idle, ping := int64(s.cfg.IdleTimeout), int64(s.cfg.PingInterval)
	for ; budget > 0 && len(l.conns) > 0; budget-- {
		if l.cursor >= len(l.conns) {
			l.cursor = 0
		}
		c := l.conns[l.cursor]
		quiet := now - c.lastRead
		switch {
		case c.phase != phaseOpen:
		case c.expires != 0 && now >= c.expires:
			l.closeLater(c, CloseSessionExpired)
			if c.phase == phaseClosed {
				continue
			}
		case quiet >= idle:
			l.closeLater(c, CloseIdleTimeout)
			if c.phase == phaseClosed {
				continue // c's slot now holds another connection
			}
		case quiet >= ping && now-c.lastPing >= ping:
			c.lastPing = now
			l.out = appendFrame(l.out[:0], true, ws.OpPing, nil)
			if !l.send(c, l.out) && c.phase == phaseClosed {
				continue
			}
		}
		l.cursor++
	}
}

// closeAll sends close 1001 to every open connection (Stop, first phase;
// handshakes in progress finish with a 503 or their deadline); with force
// it closes every connection at once.
func (l *loop) closeAll(force bool) {
	for i := l.pendingHead; force && i < len(l.pending); i++ {
		if c := l.pending[i].c; c.phase == phaseHandshake {
			l.closeNow(c)
		}
	}
	for i := len(l.conns) - 1; i >= 0; i-- {
		if i >= len(l.conns) {
			continue
		}
		c := l.conns[i]
		if c.phase == phaseOpen || c.phase == phaseWelcome {
			l.sendClose(c, CloseShutdown)
		}
		if force {
			l.closeNow(c)
		}
	}
}

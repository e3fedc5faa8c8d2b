package engine

import (
	"context"

	"github.com/gobwas/ws"
)

// Publish sends data (a valid JSON value, checked by the caller) to every
// connection of user as one text frame {"type":"message","data":<data>}.
// The frame is encoded once and each event loop gets one task. It returns
// how many connections were targeted.
//
// Safe to call from any goroutine except an event loop (OnMessage): it waits
// for every loop's task to report its count.
func (s *Server) Publish(user string, data []byte) int {
	return s.fanOut(user, true, data)
}

// Broadcast sends data to every open connection, like Publish.
//
// Safe to call from any goroutine except an event loop (OnMessage).
func (s *Server) Broadcast(data []byte) int {
	return s.fanOut("", false, data)
}

// encodeMessage builds the pushed frame once for all recipients, in one
// allocation.
func encodeMessage(data []byte) []byte {
	const head, tail = `{"type":"message","data":`, `}`
	n := len(head) + len(data) + len(tail)
	frame := appendFrameHeader(make([]byte, 0, maxHeaderLen+n), true, ws.OpText, n)
	return append(append(append(frame, head...), data...), tail...)
}

func (s *Server) fanOut(user string, oneUser bool, data []byte) int {
	s.publishes.Add(1)
	loops := s.loopList()
	if len(loops) == 0 {
		return 0
	}
	frame := encodeMessage(data)
	counts := make(chan int, len(loops))
	asked := 0
	for _, l := range loops {
		task := func(context.Context) error {
			if oneUser {
				counts <- l.publishUser(user, frame)
			} else {
				counts <- l.broadcast(frame)
			}
			return nil
		}
		if l.el.Execute(context.Background(), runnable(task)) == nil {
			asked++
		}
	}
	total := 0
	for range asked {
		select {
		case n := <-counts:
			total += n
		case <-s.done: // the loops stopped; a queued task may never run
			return total
		}
	}
	return total
}

// publishUser writes frame to user's connections on this loop.
func (l *loop) publishUser(user string, frame []byte) int {
	n := 0
	for c := l.users[user]; c != nil; {
		next := c.nextUser // c may be closed (and unlinked) below
		if c.phase == phaseOpen {
			n++
			l.push(c, frame)
		}
		c = next
	}
	return n
}

// broadcast writes frame to every open connection on this loop.
func (l *loop) broadcast(frame []byte) int {
	n := 0
	// Backwards: closing conns[i] moves the last (already visited) into i.
	for i := len(l.conns) - 1; i >= 0; i-- {
		if i >= len(l.conns) {
			continue
		}
		if c := l.conns[i]; c.phase == phaseOpen {
			n++
			l.push(c, frame)
		}
	}
	return n
}

// push writes one data frame for the client (a pushed message or an echo)
// through send's outbound limit and counts it.
func (l *loop) push(c *Conn, frame []byte) {
	if l.send(c, frame) {
		l.counters.messagesOut.Add(1)
	}
}

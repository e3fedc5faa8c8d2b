package engine

import (
	"context"
	"math"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// brokerTimeout bounds every broker call the engine makes on its own
// (subscribes, history reads); an HTTP publish uses its request's context.
const brokerTimeout = 5 * time.Second

// PublishResult is what a channel publish did.
type PublishResult struct {
	Recipients int    // local subscriptions of the channel when it was published
	Offset     uint64 // the message's offset in the channel
	Epoch      string // the channel's epoch
	Duplicate  bool   // an earlier publish with the same idempotency key won
}

// PublishChannel publishes data (one valid JSON value, checked by the
// caller) to channel through the broker, which assigns its offset, keeps
// it in history and delivers it to every node's subscribers as
// {"type":"message","channel":…,"offset":…,"data":…}. It fails with the
// broker's error (broker.ErrUnavailable: nothing was published).
//
// Safe from any goroutine except an event loop: the broker may block.
func (s *Server) PublishChannel(ctx context.Context, channel string, data []byte, idempotencyKey string) (PublishResult, error) {
	s.publishes.Add(1)
	res, err := s.hub.broker.Publish(ctx, channel, data, broker.PublishOptions{IdempotencyKey: idempotencyKey})
	if err != nil {
		return PublishResult{}, err
	}
	return PublishResult{Recipients: s.hub.subscribers(channel), Offset: res.Position.Offset,
		Epoch: res.Position.Epoch, Duplicate: res.Duplicate}, nil
}

// PublishUser publishes data to user's personal channel "#<user>", which
// every connection of the user is subscribed to. Safe like PublishChannel.
func (s *Server) PublishUser(ctx context.Context, user string, data []byte, idempotencyKey string) (PublishResult, error) {
	return s.PublishChannel(ctx, PersonalChannel(user), data, idempotencyKey)
}

// BroadcastAll sends data to every open connection of every node as
// {"type":"message","data":…}: no channel, no offset, no history. It
// returns how many local connections were open.
//
// Safe from any goroutine except an event loop.
func (s *Server) BroadcastAll(ctx context.Context, data []byte) (int, error) {
	s.publishes.Add(1)
	if err := s.hub.broker.Broadcast(ctx, data); err != nil {
		return 0, err
	}
	return int(s.openConns.Load()), nil
}

// Disconnect closes, on every node, all of d.User's connections or the
// connection d.Conn, with close code 4001. It returns how many local
// connections it closed.
//
// Safe from any goroutine except an event loop: it waits for the loops.
//
// This node's connections are closed first (and counted): those open when
// Disconnect was called, not one opened since. Then the broker tells every
// node; its delivery back to this node, marked with this node's id as
// Origin, is ignored, so a client that reconnected meanwhile stays. If
// the broker fails, the local ones are closed all the same and the error
// says the others may not be: a retry is harmless.
func (s *Server) Disconnect(ctx context.Context, d broker.Disconnect) (int, error) {
	counts := make(chan int, len(s.loopList()))
	asked := s.disconnectLocal(d, counts, true)
	total := 0
wait:
	for range asked {
		select {
		case n := <-counts:
			total += n
		case <-s.done:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	d.Origin = s.nodeID
	if err := s.hub.broker.Disconnect(ctx, d); err != nil {
		return total, err
	}
	return total, nil
}

// disconnectLocal closes this node's connections named by d, one task per
// loop that may hold them; each task reports its count on counts (if not
// nil, with room for every loop). With openNow, a loop closes only the
// connections it had opened when disconnectLocal was called, not one that
// came in before its task ran. It returns how many tasks it queued.
func (s *Server) disconnectLocal(d broker.Disconnect, counts chan<- int, openNow bool) int {
	asked := 0
	for _, l := range s.loopList() {
		if d.Conn != "" && !s.mayHoldConn(l, d.Conn) {
			continue
		}
		upTo := uint64(math.MaxUint64)
		if openNow {
			upTo = l.lastSeq.Load()
		}
		task := func(context.Context) error {
			n := l.disconnect(d, upTo)
			if counts != nil {
				counts <- n
			}
			return nil
		}
		if l.el.Execute(context.Background(), runnable(task)) == nil {
			asked++
		}
	}
	return asked
}

// mayHoldConn reports whether a connection id can be one of loop l's
// (see Conn.appendID).
func (s *Server) mayHoldConn(l *loop, id string) bool {
	li, _, ok := s.parseConnID(id)
	return ok && li == l.index
}

// disconnect closes this loop's connections named by d with 4001, of
// those numbered up to upTo.
func (l *loop) disconnect(d broker.Disconnect, upTo uint64) int {
	n := 0
	if d.User != "" {
		lc := l.chans[PersonalChannel(d.User)]
		if lc == nil {
			return 0
		}
		for i := len(lc.subs) - 1; i >= 0; i-- {
			if i >= len(lc.subs) {
				continue
			}
			if c := lc.subs[i].c; c.seq <= upTo && (c.phase == phaseOpen || c.phase == phaseWelcome) {
				n++
				l.closeLater(c, CloseDisconnected)
			}
		}
		return n
	}
	li, seq, ok := l.srv.parseConnID(d.Conn)
	if !ok || li != l.index {
		return 0
	}
	for _, c := range l.conns {
		if c.seq == seq && (c.phase == phaseOpen || c.phase == phaseWelcome) {
			l.closeLater(c, CloseDisconnected)
			return 1
		}
	}
	return 0
}

// closeDisconnected is the close code of a connection closed by
// /disconnect: the client should not reconnect on its own.
const closeDisconnected ws.StatusCode = 4001

// broadcast writes frame to every open connection on this loop.
func (l *loop) broadcast(frame []byte) int { return l.broadcastZ(frame, nil) }

// broadcastZ writes frame to every open connection on this loop, in its
// compressed form z to those that negotiated compression.
func (l *loop) broadcastZ(frame []byte, z *zframe) int {
	n := 0
	// Backwards: closing conns[i] moves the last (already visited) into i.
	for i := len(l.conns) - 1; i >= 0; i-- {
		if i >= len(l.conns) {
			continue
		}
		if c := l.conns[i]; c.phase == phaseOpen {
			n++
			l.push(c, z.frameFor(c, frame))
		}
	}
	return n
}

// push writes one data frame for the client (a pushed message or a reply)
// through send's outbound limit and counts it.
func (l *loop) push(c *Conn, frame []byte) {
	if l.send(c, frame) {
		l.counters.messagesOut.Add(1)
	}
}

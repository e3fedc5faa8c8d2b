package engine

import (
	"context"
	"errors"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// Asynchronous admission (DESIGN 1.6: nothing on an event loop waits for
// Redis). When the Store is a ticket.AsyncRedeemer, a handshake whose
// every other check passed starts the redeem and waits in its own phase
// (Conn.redeeming): its header bytes stay in gnet's buffer, its handshake
// deadline keeps running, and the loop serves others meanwhile. The answer
// comes back on the connection's loop (gnet's Execute), where the upgrade
// runs again over the same bytes with the redeemed claims: 101 and the
// welcome, or 401 for an unknown or used ticket, or 503 with Retry-After
// when the store is unavailable.
//
// A ticket's fate: once the redeem has started the ticket is spent,
// whatever happens to the connection. A connection that closes (or passes
// its deadline) while waiting is never admitted, and its ticket does not
// come back: the store consumed it atomically, and giving it back would
// reopen the race that exactly-once closes. The same holds when the second
// pass refuses it (the server began stopping, or reached -max-conns).
//
// The embedded Map is not an AsyncRedeemer: its Redeem runs inline, as
// before, without an allocation.

// errRedeemPending is returned by OnBeforeUpgrade when the redeem went off
// the loop; rejectPending is its reason, never counted nor answered.
var errRedeemPending = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("pending"))

const rejectPending = NumRejectReasons

// errRejectUnavailable: the store could not be reached.
var errRejectUnavailable = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("unavailable"))

// asyncHandshake is the part of a loop's handshake scratch for the second
// pass of an asynchronous admission.
type asyncHandshake struct {
	conn    *Conn // the connection being upgraded, during admit
	redeemd bool  // the second pass: claims hold the redeemed claims
}

// redeem is OnBeforeUpgrade's last step: the redeemed claims of a second
// pass, or the Store's inline Redeem, or the start of an asynchronous one.
func (l *loop) redeem() (ticket.Claims, error) {
	if l.hs.redeemd {
		return l.hs.claims, nil
	}
	text := l.hs.ticket[:l.hs.ticketLen]
	store := l.srv.cfg.Store
	async, ok := store.(ticket.AsyncRedeemer)
	if !ok {
		claims, err := store.Redeem(text, time.Now())
		if err != nil {
			return ticket.Claims{}, errRejectTicket
		}
		return claims, nil
	}
	c := l.hs.conn
	el := l.el
	err := async.RedeemAsync(text, time.Now(), func(claims ticket.Claims, err error) {
		task := func(context.Context) error {
			l.redeemed(c, claims, err)
			return nil
		}
		// A loop that no longer runs has closed c already.
		_ = el.Execute(context.Background(), gnet.RunnableFunc(task))
	})
	switch {
	case err == nil:
		c.redeeming = true
		return ticket.Claims{}, errRedeemPending
	case errors.Is(err, ticket.ErrUnavailable):
		return ticket.Claims{}, errRejectUnavailable
	}
	return ticket.Claims{}, errRejectTicket
}

// redeemed runs on c's loop with the redeem's answer.
func (l *loop) redeemed(c *Conn, claims ticket.Claims, err error) {
	if c.phase != phaseHandshake || !c.redeeming {
		return // closed (or timed out) while waiting: never admitted
	}
	c.redeeming = false
	if err != nil {
		reason := RejectTicket
		if errors.Is(err, ticket.ErrUnavailable) {
			reason = RejectUnavailable
		}
		if l.reject(c, reason) == gnet.Close {
			l.closeNow(c)
		}
		return
	}
	l.hs.redeemd, l.hs.claims = true, claims
	action, done := l.handshake(c)
	l.hs.redeemd = false
	if done {
		action = l.readFrames(c)
	}
	if action == gnet.Close {
		l.closeNow(c)
	}
}

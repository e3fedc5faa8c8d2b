package engine

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// refreshAsync redeems a refresh command's ticket off the loop when the
// Store is a ticket.AsyncRedeemer (Redis: nothing on a loop waits for the
// network), and answers it back on c's loop; it reports false for a
// Store that redeems inline. A connection gone by then gets no answer;
// its ticket is spent, as for an upgrade (admit_async.go).
func (l *loop) refreshAsync(c *Conn, cmd *command) bool {
	async, ok := l.srv.cfg.Store.(ticket.AsyncRedeemer)
	if !ok {
		return false
	}
	id, el := cmd.id, l.el
	err := async.RedeemAsync(cmd.ticket, time.Now(), func(claims ticket.Claims, err error) {
		task := func(context.Context) error {
			if c.phase == phaseOpen {
				l.refreshed(c, id, claims, err)
			}
			return nil
		}
		_ = el.Execute(context.Background(), gnet.RunnableFunc(task))
	})
	if err != nil {
		l.refreshed(c, id, ticket.Claims{}, err)
	}
	return true
}

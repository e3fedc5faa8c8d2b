package auth

import (
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// issue stores c and returns the ticket's text: a TextIssuer's own text
// (a sealed ticket is longer than a Ticket), else the Ticket's.
func (h *Handlers) issue(c ticket.Claims, now time.Time) (string, error) {
	if ti, ok := h.cfg.Store.(ticket.TextIssuer); ok {
		return ti.IssueText(c, now, h.cfg.TicketTTL)
	}
	t, err := h.cfg.Store.Issue(c, now, h.cfg.TicketTTL)
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

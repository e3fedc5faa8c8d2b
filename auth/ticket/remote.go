package ticket

import "time"

// TextIssuer is a Store whose tickets are not the 22-character Ticket text
// (a sealed ticket, see Sealer). The HTTP API hands out IssueText's text
// when its Store has it, and Issue's Ticket.String() otherwise.
type TextIssuer interface {
	// IssueText is Issue returning the ticket's text form. Safe for
	// concurrent use; it may block on the network (never call it on an
	// event loop).
	IssueText(c Claims, now time.Time, ttl time.Duration) (string, error)
}

// AsyncRedeemer is a Store whose Redeem takes a network round trip (e.g.
// Redis). The engine redeems through RedeemAsync when its Store has it, so
// that no event loop waits for the network.
type AsyncRedeemer interface {
	// RedeemAsync starts redeeming text. It returns ErrInvalid at once,
	// without a round trip, for a ticket that cannot be valid (malformed,
	// forged, expired), or ErrUnavailable when it cannot start one; then
	// done is never called. Otherwise it returns nil and calls done exactly
	// once, later, from another goroutine, with the claims or with
	// ErrInvalid (unknown, already used) or ErrUnavailable (the backend
	// cannot be reached: nothing was redeemed, or it is unknown whether it
	// was — the caller answers 503 either way and admits nothing).
	// text is not kept after RedeemAsync returns. Safe for concurrent use;
	// it does not block.
	RedeemAsync(text []byte, now time.Time, done func(Claims, error)) error
}

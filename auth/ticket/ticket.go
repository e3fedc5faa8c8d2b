// Package ticket defines the one-time WebSocket admission ticket, the claims it
// carries, and the Store that issues and redeems tickets.
//
// A ticket is 128 random bits from crypto/rand, written as 22 characters of
// unpadded base64url. It admits exactly one connection, once, before it
// expires. Redeem is on the admission hot path of every event loop: an
// implementation must never block, lock or allocate there.
//
// This package must never log a ticket, verify a JWT or hash a password.
package ticket

import (
	"errors"
	"time"
)

// Size is the number of random bytes in a ticket.
const Size = 16

// TextLen is the length of a ticket's text form (unpadded base64url).
const TextLen = 22

// Ticket is the binary form of a ticket.
type Ticket [Size]byte

// Claims is what a ticket carries from the HTTP API to the WebSocket listener.
type Claims struct {
	// Subject is the authenticated user (the JWT "sub").
	Subject string
	// SessionExpires is the expiry of the token the ticket was traded for.
	SessionExpires time.Time
	// Channels the connection may subscribe to (reserved for channels).
	Channels []string
	// RemoteAddr and Origin the ticket was issued to, for later binding checks.
	RemoteAddr string
	Origin     string
}

// Store issues and redeems tickets.
type Store interface {
	// Issue stores c under a fresh ticket valid until now+ttl and returns the
	// ticket. It fails with ErrFull when the store holds its capacity of live
	// tickets and with ErrUnavailable when a backing service cannot be reached.
	// Safe for concurrent use.
	Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error)

	// Redeem parses text as a ticket and consumes it. Of any number of
	// concurrent calls with the same ticket, exactly one gets the claims.
	// Malformed, unknown, expired and already used tickets all fail with
	// ErrInvalid. Safe for concurrent use; must not block, lock or allocate.
	Redeem(text []byte, now time.Time) (Claims, error)
}

// Errors returned by stores. They are built once so that the hot path never
// allocates an error.
var (
	ErrInvalid     = errors.New("ticket: missing, unknown, expired or already used")
	ErrFull        = errors.New("ticket: store is full")
	ErrUnavailable = errors.New("ticket: store unavailable")
)

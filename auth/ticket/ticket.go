// Package ticket defines the one-time WebSocket admission ticket, the claims it
// carries, the Store that issues and redeems tickets, and Map, the embedded
// Store.
//
// A ticket is 128 random bits from crypto/rand, written as 22 characters of
// unpadded base64url; a sealed ticket (Sealer: for a store that nodes share)
// wraps them with a key id, its expiry and a MAC in SealedTextLen (52)
// characters. Either admits exactly one connection, once, before it
// expires. Redeem is on the admission hot path of every event loop: an
// implementation must never block, lock or allocate there.
//
// Map's progress guarantees: every operation is wait-free, finishing in a
// bounded number of its own steps whatever other goroutines do. Redeem reads
// the one slot its ticket names and makes at most one CAS and a few counter
// adds; Sweep visits its budget of slots; Issue probes a bounded number of
// slots per shard, then answers ErrFull. No operation ever waits for another
// goroutine, and none takes a mutex.
//
// This package must never log a ticket, verify a JWT, hash a password, block
// the caller, or hold more than its configured capacity of tickets.
package ticket

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"
)

// Size is the number of random bytes in a ticket.
const Size = 16

// TextLen is the length of a ticket's text form (unpadded base64url).
const TextLen = 22

// Ticket is the binary form of a ticket.
type Ticket [Size]byte

// New returns a fresh ticket of 128 random bits from crypto/rand.
// Safe for concurrent use.
func New() (Ticket, error) {
	var t Ticket
	if _, err := rand.Read(t[:]); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// alphabet is the base64url alphabet (RFC 4648 section 5).
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// invalidSextet marks a byte outside the alphabet in decodeTable.
const invalidSextet = 0xFF

// decodeTable maps a byte to its 6-bit value, or invalidSextet.
var decodeTable = func() (table [256]byte) {
	for i := range table {
		table[i] = invalidSextet
	}
	for i := 0; i < len(alphabet); i++ {
		table[alphabet[i]] = byte(i)
	}
	return table
}()

// Parse decodes the text form of a ticket: exactly TextLen characters of
// unpadded base64url. Any other length, a byte outside the alphabet, padding,
// or a last character whose unused low 4 bits are not zero (a non-canonical
// encoding: two texts must never name one ticket) fail with ErrInvalid.
// It never allocates. Safe for concurrent use.
func Parse(text []byte) (Ticket, error) {
	var t Ticket
	if len(text) != TextLen {
		return Ticket{}, ErrInvalid
	}
	// 20 characters carry 15 bytes in groups of 4 characters → 3 bytes.
	var bad byte
	for g := 0; g < 5; g++ {
		a := decodeTable[text[4*g]]
		b := decodeTable[text[4*g+1]]
		c := decodeTable[text[4*g+2]]
		d := decodeTable[text[4*g+3]]
		bad |= a | b | c | d
		t[3*g] = a<<2 | b>>4
		t[3*g+1] = b<<4 | c>>2
		t[3*g+2] = c<<6 | d
	}
	// The last 2 characters carry 12 bits: 8 of data and 4 that must be zero.
	a := decodeTable[text[20]]
	b := decodeTable[text[21]]
	bad |= a | b
	t[15] = a<<2 | b>>4
	// A valid sextet is < 64, so bit 6 or 7 set means some byte was invalid.
	if bad&^0x3F != 0 || b&0x0F != 0 {
		return Ticket{}, ErrInvalid
	}
	return t, nil
}

// String returns the text form of t (TextLen characters of unpadded
// base64url). Safe for concurrent use.
func (t Ticket) String() string {
	return base64.RawURLEncoding.EncodeToString(t[:])
}

// LogValue keeps a Ticket out of logs: slog writes "[redacted]" in its
// place, whatever the handler. Safe for concurrent use.
func (t Ticket) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// AppendText appends the text form of t to dst and returns the extended
// slice; it allocates only if dst lacks room for TextLen more bytes.
// Safe for concurrent use.
func (t Ticket) AppendText(dst []byte) []byte {
	return base64.RawURLEncoding.AppendEncode(dst, t[:])
}

// Claims is what a ticket carries from the HTTP API to the WebSocket listener.
type Claims struct {
	// Subject is the authenticated user (the JWT "sub").
	Subject string
	// SessionExpires is the expiry of the token the ticket was traded for.
	SessionExpires time.Time
	// Channels are the connection's grants (the JWT's channels claim):
	// names and prefix patterns it may subscribe to, beside its personal
	// channel. Read-only once returned by a Store (see Map.Redeem).
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

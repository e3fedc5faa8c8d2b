package ticket

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// A sealed ticket authenticates itself: it carries its key id, its expiry
// and a MAC beside the 128 random bits, so that any node holding the key
// refuses a forged, malformed or expired ticket by itself, without asking
// the shared store (DESIGN 1.6: a reject storm costs Redis nothing). Only a
// ticket that passes Open is looked up, and the lookup alone decides
// whether it is still unused.
//
// Binary layout, SealedSize bytes, written as SealedTextLen characters of
// unpadded base64url (39 bytes are exactly 52 characters: no spare bits, so
// every text has one decoding and every ticket one text):
//
//	[0]      key id (a byte derived from the key: see Sealer)
//	[1:7]    expiry, unix milliseconds, big endian (48 bits: until year 10889)
//	[7:23]   the ticket's random id (a Ticket, 128 bits from crypto/rand)
//	[23:39]  HMAC-SHA256(key, bytes 0..22), first 16 bytes
const (
	SealedSize    = 39
	SealedTextLen = 52
	// MaxTextLen is the longest ticket text any store accepts; the engine
	// copies at most this many characters from a request.
	MaxTextLen = SealedTextLen

	sealedMACLen = 16
	sealedBody   = SealedSize - sealedMACLen
	// MinKeyLen is the shortest -ticket-key a Sealer takes (256 bits).
	MinKeyLen = 32
)

// Errors of NewSealer and ParseKeys, built once.
var (
	ErrNoKey        = errors.New("ticket: a sealed ticket store needs at least one key")
	ErrShortKey     = errors.New("ticket: a ticket key must be at least 32 bytes")
	ErrKeyCollision = errors.New("ticket: two ticket keys have the same key id; replace one")
)

// Sealer seals and opens self-authenticating tickets with a list of keys:
// the first seals, every one opens. Rotation without refusing live
// tickets: add the new key second on every node (all nodes now open it),
// then move it first (nodes seal with it), and drop the old key once a
// ticket TTL has passed.
//
// A key's id is the first byte of SHA-256("turnstile ticket key" ‖ key), so
// nodes agree on ids without configuring them; two keys of one list with the
// same id are refused (ErrKeyCollision), one chance in 256.
//
// A Sealer is immutable: safe for concurrent use.
type Sealer struct {
	keys []sealKey // keys[0] seals
}

type sealKey struct {
	id   byte
	ipad [sha256.BlockSize]byte
	opad [sha256.BlockSize]byte
}

// NewSealer returns a Sealer for keys (the first seals). Every key is at
// least MinKeyLen bytes.
func NewSealer(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	s := &Sealer{}
	seen := map[byte]bool{}
	for _, k := range keys {
		if len(k) < MinKeyLen {
			return nil, ErrShortKey
		}
		sk := sealKey{id: keyID(k)}
		if seen[sk.id] {
			return nil, ErrKeyCollision
		}
		seen[sk.id] = true
		// HMAC's padded key blocks (RFC 2104); a key longer than the block
		// is hashed first.
		if len(k) > sha256.BlockSize {
			sum := sha256.Sum256(k)
			k = sum[:]
		}
		copy(sk.ipad[:], k)
		copy(sk.opad[:], k)
		for i := range sk.ipad {
			sk.ipad[i] ^= 0x36
			sk.opad[i] ^= 0x5c
		}
		s.keys = append(s.keys, sk)
	}
	return s, nil
}

// ParseKeys splits a -ticket-key value, a comma list of secrets (the first
// seals), into keys for NewSealer. Spaces around an entry are trimmed.
func ParseKeys(list string) ([][]byte, error) {
	var keys [][]byte
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, []byte(k))
		}
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return keys, nil
}

func keyID(k []byte) byte {
	h := sha256.New()
	h.Write([]byte("turnstile ticket key"))
	h.Write(k)
	return h.Sum(nil)[0]
}

// mac writes HMAC-SHA256(k, body) truncated to sealedMACLen into out. It
// works on stack buffers: no allocation.
func (k *sealKey) mac(body *[sealedBody]byte, out *[sealedMACLen]byte) {
	var in [sha256.BlockSize + sealedBody]byte
	copy(in[:], k.ipad[:])
	copy(in[sha256.BlockSize:], body[:])
	inner := sha256.Sum256(in[:])
	var o [sha256.BlockSize + sha256.Size]byte
	copy(o[:], k.opad[:])
	copy(o[sha256.BlockSize:], inner[:])
	sum := sha256.Sum256(o[:])
	copy(out[:], sum[:sealedMACLen])
}

// Seal returns the text of a sealed ticket for id that expires at expires
// (truncated to the millisecond). Safe for concurrent use.
func (s *Sealer) Seal(id Ticket, expires time.Time) string {
	var b [SealedSize]byte
	s.seal(&b, id, expires)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Sealer) seal(b *[SealedSize]byte, id Ticket, expires time.Time) {
	k := &s.keys[0]
	var body [sealedBody]byte
	body[0] = k.id
	ms := uint64(max(expires.UnixMilli(), 0))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], ms)
	copy(body[1:7], e[2:])
	copy(body[7:], id[:])
	var m [sealedMACLen]byte
	k.mac(&body, &m)
	copy(b[:], body[:])
	copy(b[sealedBody:], m[:])
}

// Open checks a sealed ticket's text: its length and alphabet, its key id,
// its MAC (in constant time) and that it has not expired at now. It returns
// the ticket's random id and expiry, or ErrInvalid for any failure (one
// answer for all, as for the embedded Map). It never allocates. Safe for
// concurrent use.
func (s *Sealer) Open(text []byte, now time.Time) (Ticket, time.Time, error) {
	if len(text) != SealedTextLen {
		return Ticket{}, time.Time{}, ErrInvalid
	}
	var b [SealedSize]byte
	// Every character must be of the alphabet: Decode would skip \r and \n.
	for _, c := range text {
		if decodeTable[c] == invalidSextet {
			return Ticket{}, time.Time{}, ErrInvalid
		}
	}
	if n, err := base64.RawURLEncoding.Decode(b[:], text); err != nil || n != SealedSize {
		return Ticket{}, time.Time{}, ErrInvalid
	}
	var k *sealKey
	for i := range s.keys {
		if s.keys[i].id == b[0] {
			k = &s.keys[i]
			break
		}
	}
	if k == nil {
		return Ticket{}, time.Time{}, ErrInvalid
	}
	var body [sealedBody]byte
	copy(body[:], b[:sealedBody])
	var m [sealedMACLen]byte
	k.mac(&body, &m)
	if subtle.ConstantTimeCompare(m[:], b[sealedBody:]) != 1 {
		return Ticket{}, time.Time{}, ErrInvalid
	}
	var e [8]byte
	copy(e[2:], b[1:7])
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(e[:])))
	if !now.Before(expires) {
		return Ticket{}, time.Time{}, ErrInvalid
	}
	var id Ticket
	copy(id[:], b[7:23])
	return id, expires, nil
}

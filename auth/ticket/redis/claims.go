package redis

import (
	"encoding/binary"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// claimsVersion is the first byte of an encoded Claims, so that a later
// layout can be told apart (and a foreign value refused).
const claimsVersion = 1

// maxClaimsField bounds every decoded length: a value from Redis is never
// trusted to size an allocation.
const maxClaimsField = 1 << 16

// encodeClaims appends c compactly: version, session end (unix ms, 0 for
// none), subject, remote address, origin, then the channel count and each
// channel, strings as uvarint length + bytes.
func encodeClaims(dst []byte, c ticket.Claims) []byte {
	dst = append(dst, claimsVersion)
	var ms int64
	if !c.SessionExpires.IsZero() {
		ms = c.SessionExpires.UnixMilli()
	}
	dst = binary.AppendVarint(dst, ms)
	for _, s := range []string{c.Subject, c.RemoteAddr, c.Origin} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Channels)))
	for _, ch := range c.Channels {
		dst = appendString(dst, ch)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeClaims is encodeClaims' inverse; ok is false for anything it did
// not write (another version, truncated, trailing bytes).
func decodeClaims(b []byte) (c ticket.Claims, ok bool) {
	if len(b) == 0 || b[0] != claimsVersion {
		return c, false
	}
	b = b[1:]
	ms, n := binary.Varint(b)
	if n <= 0 {
		return c, false
	}
	b = b[n:]
	if ms != 0 {
		c.SessionExpires = time.UnixMilli(ms)
	}
	fields := []*string{&c.Subject, &c.RemoteAddr, &c.Origin}
	for _, f := range fields {
		if *f, b, ok = readString(b); !ok {
			return ticket.Claims{}, false
		}
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count > maxClaimsField || count > uint64(len(b)) {
		return ticket.Claims{}, false
	}
	b = b[n:]
	if count > 0 {
		c.Channels = make([]string, count)
		for i := range c.Channels {
			if c.Channels[i], b, ok = readString(b); !ok {
				return ticket.Claims{}, false
			}
		}
	}
	if len(b) != 0 {
		return ticket.Claims{}, false
	}
	return c, true
}

func readString(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > maxClaimsField || l > uint64(len(b)-n) {
		return "", nil, false
	}
	b = b[n:]
	return string(b[:l]), b[l:], true
}

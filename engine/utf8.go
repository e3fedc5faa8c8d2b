package engine

import "unicode/utf8"

// utf8Validator checks text that arrives in pieces (the fragments of one
// message). It carries an incomplete trailing code point from one piece to
// the next and fails on the first byte that cannot start or continue a valid
// sequence, so a bad fragment is refused before the message ends.
// The zero value is ready; it is not safe for concurrent use.
type utf8Validator struct {
	pend [3]byte // the incomplete code point carried to the next piece
	n    uint8   // how many bytes of pend are in use
}

// write validates p as the continuation of what came before. It reports
// false as soon as the text so far cannot be valid UTF-8.
func (v *utf8Validator) write(p []byte) bool {
	if v.n > 0 {
		need := seqLen(v.pend[0])
		var buf [4]byte
		k := copy(buf[:], v.pend[:v.n])
		for k < need && len(p) > 0 {
			buf[k] = p[0]
			p = p[1:]
			k++
		}
		if k < need {
			if !validPrefix(buf[:k]) {
				return false
			}
			copy(v.pend[:], buf[:k])
			v.n = uint8(k)
			return true
		}
		if !utf8.Valid(buf[:k]) {
			return false
		}
		v.n = 0
	}
	body, tail := splitIncomplete(p)
	if !utf8.Valid(body) {
		return false
	}
	if len(tail) > 0 {
		if !validPrefix(tail) {
			return false
		}
		v.n = uint8(copy(v.pend[:], tail))
	}
	return true
}

// done reports whether the text ended on a code point boundary, and resets v.
func (v *utf8Validator) done() bool {
	ok := v.n == 0
	v.n = 0
	return ok
}

// validUTF8 reports whether p is complete, valid UTF-8.
func validUTF8(p []byte) bool { return utf8.Valid(p) }

// seqLen is the length of the sequence a lead byte starts, or 0 for a byte
// that cannot start one (continuation bytes, C0, C1, F5..FF).
func seqLen(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b < 0xC2:
		return 0
	case b < 0xE0:
		return 2
	case b < 0xF0:
		return 3
	case b < 0xF5:
		return 4
	default:
		return 0
	}
}

// splitIncomplete cuts p before a trailing sequence that is too short to be
// complete. A trailing byte that cannot start a sequence stays in body so
// that utf8.Valid refuses it.
func splitIncomplete(p []byte) (body, tail []byte) {
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		b := p[i]
		if b&0xC0 == 0x80 {
			continue // continuation byte: keep looking for the lead
		}
		if need := seqLen(b); need > len(p)-i {
			return p[:i], p[i:]
		}
		break
	}
	return p, nil
}

// validPrefix reports whether b (shorter than its sequence) can still become
// a valid code point: RFC 3629 ranges, so overlongs, surrogates and values
// above U+10FFFF fail at their second byte.
func validPrefix(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if seqLen(b[0]) <= len(b) {
		return false
	}
	if len(b) >= 2 {
		lo, hi := byte(0x80), byte(0xBF)
		switch b[0] {
		case 0xE0:
			lo = 0xA0
		case 0xED:
			hi = 0x9F
		case 0xF0:
			lo = 0x90
		case 0xF4:
			hi = 0x8F
		}
		if b[1] < lo || b[1] > hi {
			return false
		}
	}
	if len(b) == 3 && b[2]&0xC0 != 0x80 {
		return false
	}
	return true
}

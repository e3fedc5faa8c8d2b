package engine

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// JSON text for /publish.
//
// A published message goes out in a WebSocket text frame, which RFC 6455
// requires to be UTF-8: a browser fails the whole connection (1006) on one
// invalid byte, so one bad publish would disconnect every recipient.
// encoding/json copies a RawMessage verbatim, invalid bytes and all, so the
// body is checked here before it is decoded.
//
// A body must be exactly one JSON value (RFC 8259) in UTF-8, and its strings
// must be Unicode text: an escaped surrogate (\ud800–\udfff) is allowed only
// as a high-low pair that spells one character. An unpaired one is ASCII on
// the wire, so the frame would be valid UTF-8, but the string it denotes is
// not Unicode: Go and most JSON libraries turn it into U+FFFD, Rust's
// serde_json refuses the whole message, and a browser's JSON.parse yields a
// string that TextEncoder or any UTF-8 storage silently changes. Refusing it
// at the door (I-JSON, RFC 7493 section 2.1, says the same) means every
// consumer decodes the same text. Noncharacters (U+FFFE and the like) are
// valid Unicode scalar values and are accepted.
//
// compactJSONText validates and compacts in one pass, in place: compaction
// only removes bytes, so the write index never passes the read index, and
// the data of a valid body comes out of the decoder already compact.

var (
	errJSONSyntax    = errors.New("malformed JSON body")
	errJSONUTF8      = errors.New("body is not valid UTF-8")
	errJSONSurrogate = errors.New("unpaired surrogate escape in a JSON string")
)

// maxJSONDepth matches encoding/json's nesting limit, so that a body this
// check accepts is never refused by the decoder for its depth.
const maxJSONDepth = 10000

// jsonTextError says what is wrong with a body and where.
type jsonTextError struct {
	err    error  // one of the errJSON sentinels
	detail string // what was found
	offset int    // byte offset in the body
}

func (e *jsonTextError) Error() string {
	msg := e.err.Error() + ": " + e.detail
	if e.offset >= 0 {
		msg += " at byte " + strconv.Itoa(e.offset)
	}
	switch e.err {
	case errJSONUTF8:
		msg += " (messages go out as WebSocket text frames, which must be UTF-8)"
	case errJSONSurrogate:
		msg += ` (a string must be Unicode text: escape a character outside the BMP as a pair such as \ud83d\ude00, or send it as UTF-8)`
	}
	return msg
}

func (e *jsonTextError) Unwrap() error { return e.err }

// strPlain marks the bytes that stand for themselves inside a JSON string:
// printable ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// compactJSONText checks that b is one JSON value in UTF-8 whose strings are
// Unicode text, and removes the insignificant whitespace in place. It
// returns b's prefix holding the compact text, or an error (a
// *jsonTextError wrapping errJSONSyntax, errJSONUTF8 or errJSONSurrogate).
// Either way b is overwritten: afterwards only the returned prefix means
// anything, so a caller that needs the original body must copy it first. It
// does not allocate unless it fails. Safe for concurrent use on different
// slices.
func compactJSONText(b []byte) ([]byte, error) {
	var stack [maxJSONDepth/64 + 1]uint64 // bit set: that level is an object
	depth := 0
	r, w := 0, 0
	n := len(b)
	var err error
value:
	r = skipJSONSpace(b, r)
	if r >= n {
		return nil, syntaxErr(b, r, "a value")
	}
	switch c := b[r]; {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return nil, &jsonTextError{errJSONSyntax, "nested deeper than " + strconv.Itoa(maxJSONDepth), r}
		}
		if c == '{' {
			stack[depth/64] |= 1 << (depth % 64)
		} else {
			stack[depth/64] &^= 1 << (depth % 64)
		}
		depth++
		b[w] = c
		r++
		w++
		r = skipJSONSpace(b, r)
		if r < n && b[r] == c+2 { // '}' is '{'+2, ']' is '['+2
			goto closeLevel
		}
		if c == '[' {
			goto value
		}
		goto key
	case c == '"':
		start := r
		if r, err = scanJSONString(b, r); err != nil {
			return nil, err
		}
		w = moveDown(b, w, start, r)
	case c == '-' || (c >= '0' && c <= '9'):
		start := r
		if r, err = scanJSONNumber(b, r); err != nil {
			return nil, err
		}
		w = moveDown(b, w, start, r)
	case c == 't' || c == 'f' || c == 'n':
		lit := "null"
		if c == 't' {
			lit = "true"
		} else if c == 'f' {
			lit = "false"
		}
		if n-r < len(lit) || string(b[r:r+len(lit)]) != lit {
			return nil, &jsonTextError{errJSONSyntax, "invalid literal, want " + lit, r}
		}
		start := r
		r += len(lit)
		w = moveDown(b, w, start, r)
	default:
		return nil, syntaxErr(b, r, "a value")
	}
afterValue:
	r = skipJSONSpace(b, r)
	if depth == 0 {
		if r < n {
			if c := b[r]; c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n' {
				return nil, &jsonTextError{errJSONSyntax, "more than one JSON value", r}
			}
			return nil, syntaxErr(b, r, "the end of the body after the value")
		}
		return b[:w], nil
	}
	if r >= n {
		return nil, syntaxErr(b, r, "',' or the end of the object or array")
	}
	{
		inObject := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
		switch c := b[r]; {
		case c == ',':
			b[w] = ','
			r++
			w++
			if inObject {
				r = skipJSONSpace(b, r)
				goto key
			}
			goto value
		case (c == '}' && inObject) || (c == ']' && !inObject):
			goto closeLevel
		case inObject:
			return nil, syntaxErr(b, r, "',' or '}' after an object member")
		default:
			return nil, syntaxErr(b, r, "',' or ']' after an array element")
		}
	}
key:
	if r >= n || b[r] != '"' {
		return nil, syntaxErr(b, r, "a string (an object member's name)")
	}
	{
		start := r
		if r, err = scanJSONString(b, r); err != nil {
			return nil, err
		}
		w = moveDown(b, w, start, r)
	}
	r = skipJSONSpace(b, r)
	if r >= n || b[r] != ':' {
		return nil, syntaxErr(b, r, "':' after an object member's name")
	}
	b[w] = ':'
	r++
	w++
	goto value
closeLevel:
	b[w] = b[r]
	r++
	w++
	depth--
	goto afterValue
}

func skipJSONSpace(b []byte, r int) int {
	for r < len(b) && isJSONSpace(b[r]) {
		r++
	}
	return r
}

// moveDown copies b[start:end] to b[w:] (w <= start) and returns the new
// write index.
func moveDown(b []byte, w, start, end int) int {
	if w != start {
		copy(b[w:], b[start:end])
	}
	return w + end - start
}

// syntaxErr describes the byte at r (or the end of b) where want was expected.
func syntaxErr(b []byte, r int, want string) error {
	if r >= len(b) {
		return &jsonTextError{errJSONSyntax, "unexpected end of body, want " + want, -1}
	}
	c := b[r]
	if c >= utf8.RuneSelf {
		if ru, size := utf8.DecodeRune(b[r:]); ru == utf8.RuneError && size <= 1 {
			return &jsonTextError{errJSONUTF8, "invalid byte 0x" + strconv.FormatUint(uint64(c), 16), r}
		}
	}
	found := "byte 0x" + strconv.FormatUint(uint64(c), 16)
	if c > 0x20 && c < 0x7f {
		found = strconv.QuoteRune(rune(c))
	}
	return &jsonTextError{errJSONSyntax, "invalid character " + found + ", want " + want, r}
}

// scanJSONString checks the string that starts with the quote at b[r] and
// returns the index just past its closing quote.
func scanJSONString(b []byte, r int) (int, error) {
	n := len(b)
	i := r + 1
	for {
		for i < n && strPlain[b[i]] {
			i++
		}
		if i >= n {
			return 0, &jsonTextError{errJSONSyntax, "unexpected end of body inside a string", -1}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= n {
				return 0, &jsonTextError{errJSONSyntax, "unexpected end of body inside a string", -1}
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				u, ok := hex4(b, i+2)
				if !ok {
					return 0, &jsonTextError{errJSONSyntax, `invalid \u escape, want four hex digits`, i}
				}
				switch {
				case u >= 0xd800 && u < 0xdc00: // high surrogate: a low one must follow
					var lo rune
					ok := i+7 < n && b[i+6] == '\\' && b[i+7] == 'u'
					if ok {
						lo, ok = hex4(b, i+8)
					}
					if !ok || lo < 0xdc00 || lo >= 0xe000 {
						return 0, &jsonTextError{errJSONSurrogate, `\u` + string(b[i+2:i+6]) + " not followed by a low surrogate", i}
					}
					i += 12
				case u >= 0xdc00 && u < 0xe000:
					return 0, &jsonTextError{errJSONSurrogate, `\u` + string(b[i+2:i+6]) + " without a high surrogate before it", i}
				default:
					i += 6
				}
			default:
				return 0, &jsonTextError{errJSONSyntax, "invalid escape " + strconv.Quote(string(b[i:i+2])), i}
			}
		case c < 0x20:
			return 0, &jsonTextError{errJSONSyntax, "control character 0x" + strconv.FormatUint(uint64(c), 16) + " in a string (escape it)", i}
		default: // c >= 0x80
			ru, size := utf8.DecodeRune(b[i:])
			if ru == utf8.RuneError && size <= 1 {
				return 0, &jsonTextError{errJSONUTF8, "invalid byte 0x" + strconv.FormatUint(uint64(c), 16) + " in a string", i}
			}
			i += size
		}
	}
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var u rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		u = u<<4 | rune(c)
	}
	return u, true
}

// scanJSONNumber checks the number that starts at b[r] and returns the index
// just past it. What follows it is the caller's to check.
func scanJSONNumber(b []byte, r int) (int, error) {
	n := len(b)
	i := r
	digits := func() bool {
		start := i
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
		if i < n && b[i] >= '0' && b[i] <= '9' {
			return 0, &jsonTextError{errJSONSyntax, "invalid number, a leading zero is not allowed", i}
		}
	case i < n && b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		return 0, &jsonTextError{errJSONSyntax, "invalid number, want a digit after '-'", i}
	}
	if i < n && b[i] == '.' {
		i++
		if !digits() {
			return 0, &jsonTextError{errJSONSyntax, "invalid number, want a digit after '.'", i}
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, &jsonTextError{errJSONSyntax, "invalid number, want a digit in the exponent", i}
		}
	}
	return i, nil
}

package engine

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var utf8Cases = []struct {
	name string
	text string
	ok   bool
	// failAt, for invalid text, is the shortest prefix already known bad
	// (fail fast): feeding it byte by byte must fail at the latest there.
	failAt int
}{
	{"empty", "", true, 0},
	{"ascii", "hello", true, 0},
	{"2-byte", "\u00e9t\u00e9", true, 0},
	{"3-byte", "\u20ac\u20ac", true, 0},
	{"4-byte", "\U0001F600x", true, 0},
	{"max code point", "\U0010FFFF", true, 0},
	{"U+FFFD itself", "\uFFFD", true, 0},
	{"mixed", "κόσμε ✓ 😀", true, 0},
	{"lone continuation", "a\x80", false, 2},
	{"C0 lead", "\xc0\xaf", false, 1},
	{"C1 lead", "\xc1\xbf", false, 1},
	{"F5 lead", "\xf5\x80\x80\x80", false, 1},
	{"overlong 3-byte", "\xe0\x80\xaf", false, 2},
	{"surrogate", "\xed\xa0\x80", false, 2},
	{"above U+10FFFF", "\xf4\x90\x80\x80", false, 2},
	{"overlong 4-byte", "\xf0\x80\x80\xaf", false, 2},
	{"truncated at end", "ab\xe2\x82", false, -1},
	{"bad third byte", "\xe2\x82a", false, 3},
	{"bad fourth byte", "\xf0\x9f\x98a", false, 4},
	{"invalid then valid", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", false, 13},
}

func TestUTF8ValidatorWhole(t *testing.T) {
	for _, tc := range utf8Cases {
		var v utf8Validator
		ok := v.write([]byte(tc.text)) && v.done()
		if ok != tc.ok || ok != utf8.ValidString(tc.text) {
			t.Errorf("%s: got %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

// Every way of cutting the text in two (and byte by byte) gives the same
// verdict, and invalid text fails no later than its first bad byte.
func TestUTF8ValidatorSplit(t *testing.T) {
	for _, tc := range utf8Cases {
		p := []byte(tc.text)
		for cut := 0; cut <= len(p); cut++ {
			var v utf8Validator
			ok := v.write(p[:cut]) && v.write(p[cut:]) && v.done()
			if ok != tc.ok {
				t.Errorf("%s cut at %d: got %v, want %v", tc.name, cut, ok, tc.ok)
			}
		}
		var v utf8Validator
		failed := -1
		for i := range p {
			if !v.write(p[i : i+1]) {
				failed = i + 1
				break
			}
		}
		switch {
		case tc.ok && (failed >= 0 || !v.done()):
			t.Errorf("%s byte by byte: refused valid text at %d", tc.name, failed)
		case !tc.ok && tc.failAt > 0 && (failed < 0 || failed > tc.failAt):
			t.Errorf("%s byte by byte: failed at %d, want by %d", tc.name, failed, tc.failAt)
		case !tc.ok && tc.failAt < 0 && failed < 0 && v.done():
			t.Errorf("%s byte by byte: truncated text accepted", tc.name)
		}
	}
}

func TestUTF8ValidatorLong(t *testing.T) {
	s := strings.Repeat("κόσμε😀", 500)
	for _, step := range []int{1, 2, 3, 5, 7, 64} {
		var v utf8Validator
		ok := true
		for i := 0; i < len(s) && ok; i += step {
			ok = v.write([]byte(s[i:min(i+step, len(s))]))
		}
		if !ok || !v.done() {
			t.Fatalf("step %d: valid text refused", step)
		}
	}
}

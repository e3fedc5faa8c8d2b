package ticket

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// parseCases is shared by TestParse and the fuzz seed corpus.
var parseCases = []struct {
	name string
	text string
	want *Ticket // nil: ErrInvalid
}{
	{"zeros", "AAAAAAAAAAAAAAAAAAAAAA", &Ticket{}},
	{"ones", "_____________________w", &Ticket{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
	{"counting", "AAECAwQFBgcICQoLDA0ODw", &Ticket{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	{"url alphabet", "-_-_-_-_-_-_-_-_-_-_-w", &Ticket{0xFB, 0xFF, 0xBF, 0xFB, 0xFF, 0xBF, 0xFB, 0xFF, 0xBF, 0xFB, 0xFF, 0xBF, 0xFB, 0xFF, 0xBF, 0xFB}},
	{"empty", "", nil},
	{"one short", "AAAAAAAAAAAAAAAAAAAAA", nil},
	{"one long", "AAAAAAAAAAAAAAAAAAAAAAA", nil},
	{"padded 24", "AAAAAAAAAAAAAAAAAAAAAA==", nil},
	{"padding inside 22", "AAAAAAAAAAAAAAAAAAAA==", nil},
	{"std alphabet plus", "+AAAAAAAAAAAAAAAAAAAAA", nil},
	{"std alphabet slash", "AAAAAAAAAA/AAAAAAAAAAA", nil},
	{"space", "AAAAAAAAAAAAAAAAAAAAA ", nil},
	{"percent escape", "%41AAAAAAAAAAAAAAAAAAA", nil},
	{"nul", "AAAAAAAAAAAA\x00AAAAAAAAA", nil},
	{"high byte", "AAAAAAAAAAAAAAAAAAAA\xffA", nil},
	{"utf8", "AAAAAAAAAAAAAAAAAAAé", nil},
	{"non-canonical last B", "AAAAAAAAAAAAAAAAAAAAAB", nil},
	{"non-canonical last _", "AAAAAAAAAAAAAAAAAAAAA_", nil},
	{"non-canonical last x", "_____________________x", nil},
	{"std base64 of 17 bytes", "AAAAAAAAAAAAAAAAAAAAAAA", nil},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.text))
			if tc.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) = %x, %v; want ErrInvalid", tc.text, got, err)
				}
				return
			}
			if err != nil || got != *tc.want {
				t.Fatalf("Parse(%q) = %x, %v; want %x", tc.text, got, err, *tc.want)
			}
			if s := got.String(); s != tc.text {
				t.Fatalf("String() = %q; want %q", s, tc.text)
			}
		})
	}
}

// FuzzParse holds Parse to the strict standard decoder: both accept exactly
// the same texts of TextLen bytes, with the same result.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.text))
	}
	strict := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, text []byte) {
		got, err := Parse(text)
		want, stdErr := strict.DecodeString(string(text))
		valid := stdErr == nil && len(text) == TextLen && len(want) == Size
		if valid != (err == nil) {
			t.Fatalf("Parse(%q) err = %v; strict decoder err = %v (len %d)", text, err, stdErr, len(want))
		}
		if valid && !bytes.Equal(got[:], want) {
			t.Fatalf("Parse(%q) = %x; want %x", text, got, want)
		}
	})
}

func TestNewIsUniqueAndRoundTrips(t *testing.T) {
	const n = 10000
	seen := make(map[Ticket]bool, n)
	for range n {
		tk, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tk] {
			t.Fatalf("New returned %x twice", tk)
		}
		seen[tk] = true
		s := tk.String()
		if len(s) != TextLen || strings.ContainsAny(s, "+/=") {
			t.Fatalf("String() = %q: not %d characters of unpadded base64url", s, TextLen)
		}
		back, err := Parse([]byte(s))
		if err != nil || back != tk {
			t.Fatalf("Parse(String()) = %x, %v; want %x", back, err, tk)
		}
	}
}

func TestNewUsesAllBits(t *testing.T) {
	// Over many tickets every bit is seen both set and clear: a fixed or
	// truncated source would leave some bit constant.
	var or, and Ticket
	for i := range and {
		and[i] = 0xFF
	}
	for range 256 {
		tk, err := New()
		if err != nil {
			t.Fatal(err)
		}
		for i := range tk {
			or[i] |= tk[i]
			and[i] &= tk[i]
		}
	}
	for i := range or {
		if or[i] != 0xFF || and[i] != 0 {
			t.Fatalf("byte %d: OR %08b AND %08b over 256 tickets; some bit never changes", i, or[i], and[i])
		}
	}
}

func TestAppendText(t *testing.T) {
	tk := Ticket{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	got := tk.AppendText([]byte("ticket="))
	if want := "ticket=AAECAwQFBgcICQoLDA0ODw"; string(got) != want {
		t.Fatalf("AppendText = %q; want %q", got, want)
	}
	buf := make([]byte, 0, TextLen)
	if allocs := testing.AllocsPerRun(100, func() { buf = tk.AppendText(buf[:0]) }); allocs != 0 {
		t.Fatalf("AppendText into a large enough buffer: %v allocs; want 0", allocs)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	valid := []byte("AAECAwQFBgcICQoLDA0ODw")
	invalid := []byte("AAECAwQFBgcICQoLDA0ODx")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(valid); err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(invalid); err == nil {
			t.Fatal("non-canonical text parsed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse: %v allocs per run; want 0", allocs)
	}
}

// A Ticket handed to slog, by mistake, must not put the ticket in the log:
// the text handler would print String() and the JSON handler the 16 bytes.
func TestTicketIsRedactedInLogs(t *testing.T) {
	tk, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("issued", "ticket", tk, "any", any(tk), slog.Any("attr", tk))
	}
	out := buf.String()
	if strings.Contains(out, tk.String()) || strings.Contains(out, fmt.Sprint(tk[0], ",", tk[1])) {
		t.Fatalf("ticket in log output:\n%s", out)
	}
	if !strings.Contains(out, "redacted") {
		t.Fatalf("no redaction marker in log output:\n%s", out)
	}
}

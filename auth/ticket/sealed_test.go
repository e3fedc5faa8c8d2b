package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var (
	keyA = []byte(strings.Repeat("a", 32))
	keyB = []byte("another key that is long enough for HMAC-SHA256")
)

func mustSealer(t testing.TB, keys ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustSealer(t, keyA)
	id, _ := New()
	now := time.Now()
	exp := now.Add(30 * time.Second)
	text := s.Seal(id, exp)
	if len(text) != SealedTextLen {
		t.Fatalf("len %d, want %d", len(text), SealedTextLen)
	}
	got, gotExp, err := s.Open([]byte(text), now)
	if err != nil {
		t.Fatal(err)
	}
	if got != id || gotExp.UnixMilli() != exp.UnixMilli() {
		t.Fatalf("Open = %x %v, want %x %v", got, gotExp, id, exp)
	}
}

func TestSealMACIsHMACSHA256(t *testing.T) {
	for _, key := range [][]byte{keyA, keyB, []byte(strings.Repeat("k", 100))} {
		s := mustSealer(t, key)
		id, _ := New()
		b, _ := base64.RawURLEncoding.DecodeString(s.Seal(id, time.Now().Add(time.Minute)))
		h := hmac.New(sha256.New, key)
		h.Write(b[:sealedBody])
		if want := h.Sum(nil)[:sealedMACLen]; !hmac.Equal(want, b[sealedBody:]) {
			t.Fatalf("MAC %x, want HMAC-SHA256 %x", b[sealedBody:], want)
		}
	}
}

func TestOpenRefusesForgedMalformedExpired(t *testing.T) {
	s := mustSealer(t, keyA)
	id, _ := New()
	now := time.Now()
	text := s.Seal(id, now.Add(time.Minute))
	raw, _ := base64.RawURLEncoding.DecodeString(text)
	// Every single-bit change anywhere (key id, expiry, id, MAC) is refused.
	for i := range raw {
		for bit := 0; bit < 8; bit++ {
			f := append([]byte(nil), raw...)
			f[i] ^= 1 << bit
			if _, _, err := s.Open([]byte(base64.RawURLEncoding.EncodeToString(f)), now); err != ErrInvalid {
				t.Fatalf("byte %d bit %d flipped: err %v, want ErrInvalid", i, bit, err)
			}
		}
	}
	other := mustSealer(t, keyB)
	bad := map[string]string{
		"other key":  other.Seal(id, now.Add(time.Minute)),
		"expired":    s.Seal(id, now),
		"short":      text[:SealedTextLen-1],
		"long":       text + "A",
		"map ticket": id.String(),
		"newline":    text[:10] + "\n" + text[11:],
		"bad char":   text[:10] + "+" + text[11:],
		"empty":      "",
	}
	for name, b := range bad {
		if _, _, err := s.Open([]byte(b), now); err != ErrInvalid {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func TestSealerRotation(t *testing.T) {
	old := mustSealer(t, keyA)
	id, _ := New()
	now := time.Now()
	issued := old.Seal(id, now.Add(time.Minute))
	// Phase 1: every node opens the new key too; tickets sealed with the
	// old one still open.
	both := mustSealer(t, keyA, keyB)
	if _, _, err := both.Open([]byte(issued), now); err != nil {
		t.Fatalf("old ticket refused while both keys are configured: %v", err)
	}
	// Phase 2: the new key seals; the old one still opens.
	rotated := mustSealer(t, keyB, keyA)
	if _, _, err := rotated.Open([]byte(issued), now); err != nil {
		t.Fatalf("old ticket refused after rotation: %v", err)
	}
	fresh := rotated.Seal(id, now.Add(time.Minute))
	if _, _, err := both.Open([]byte(fresh), now); err != nil {
		t.Fatalf("new ticket refused by a node that has not rotated yet: %v", err)
	}
	// Phase 3: the old key is dropped: its tickets are refused.
	onlyNew := mustSealer(t, keyB)
	if _, _, err := onlyNew.Open([]byte(issued), now); err != ErrInvalid {
		t.Fatalf("ticket of a dropped key: err %v, want ErrInvalid", err)
	}
}

func TestNewSealerRefusesBadKeys(t *testing.T) {
	if _, err := NewSealer(); err != ErrNoKey {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewSealer([]byte("short")); err != ErrShortKey {
		t.Errorf("short key: %v", err)
	}
	if _, err := NewSealer(keyA, keyA); err != ErrKeyCollision {
		t.Errorf("same key twice: %v", err)
	}
	if _, err := ParseKeys(" , "); err != ErrNoKey {
		t.Errorf("empty list: %v", err)
	}
	keys, err := ParseKeys(string(keyA) + " , " + string(keyB))
	if err != nil || len(keys) != 2 || string(keys[1]) != string(keyB) {
		t.Errorf("ParseKeys = %q, %v", keys, err)
	}
}

func TestOpenDoesNotAllocate(t *testing.T) {
	s := mustSealer(t, keyB, keyA)
	id, _ := New()
	now := time.Now()
	good := []byte(s.Seal(id, now.Add(time.Minute)))
	forged := append([]byte(nil), good...)
	forged[40] ^= 1
	for name, text := range map[string][]byte{"good": good, "forged": forged} {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = s.Open(text, now) }); n != 0 {
			t.Errorf("%s: %v allocs per Open, want 0", name, n)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := mustSealer(b, keyA)
	id, _ := New()
	now := time.Now()
	text := []byte(s.Seal(id, now.Add(time.Minute)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Open(text, now); err != nil {
			b.Fatal(err)
		}
	}
}

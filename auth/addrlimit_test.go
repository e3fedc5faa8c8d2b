package auth

import (
	"testing"
	"time"
)

func TestAddrLimiter(t *testing.T) {
	clk := newFakeClock()
	l := NewAddrLimiter(3, 5*time.Second, 64, clk.Now)
	for i := range 3 {
		if w := l.Blocked("192.0.2.1"); w != 0 {
			t.Fatalf("blocked (%v) after %d failures, burst 3", w, i)
		}
		l.Failed("192.0.2.1")
	}
	w := l.Blocked("192.0.2.1")
	if w != 5*time.Second {
		t.Fatalf("after the burst: wait %v, want 5s", w)
	}
	// Blocked counts nothing: asking does not lengthen the block.
	for range 100 {
		l.Blocked("192.0.2.1")
	}
	if l.Blocked("192.0.2.2") != 0 || l.Blocked("2001:db8::1") != 0 {
		t.Fatal("other addresses blocked")
	}
	clk.Advance(w)
	if l.Blocked("192.0.2.1") != 0 {
		t.Fatal("still blocked after the wait")
	}
	l.Failed("192.0.2.1")
	if l.Blocked("192.0.2.1") == 0 {
		t.Fatal("one failure per interval after the burst, got two")
	}
	// IPv6 counts by /64.
	for range 3 {
		l.Failed("2001:db8::1")
	}
	if l.Blocked("2001:db8::ffff") == 0 {
		t.Fatal("another address of the same /64 not blocked")
	}
}

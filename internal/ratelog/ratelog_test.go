package ratelog

import (
	"testing"
	"time"
)

// One message per interval goes through, and the next one let through
// carries the count of those held back.
func TestLimiterOnePerInterval(t *testing.T) {
	var l Limiter
	l.Every = 10 * time.Second
	t0 := time.Unix(1e9, 0)
	if ok, n := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first: %v %d, want through with 0 held back", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatalf("message %d within the interval went through", i)
		}
	}
	if ok, n := l.Allow(t0.Add(10 * time.Second)); !ok || n != 5 {
		t.Fatalf("after the interval: %v %d, want through with 5 held back", ok, n)
	}
	var d Limiter // zero Every: one second
	d.Allow(t0)
	if ok, _ := d.Allow(t0.Add(999 * time.Millisecond)); ok {
		t.Fatal("default interval let two through within a second")
	}
	if ok, n := d.Allow(t0.Add(time.Second)); !ok || n != 1 {
		t.Fatalf("default interval after a second: %v %d", ok, n)
	}
}

package broker

import "testing"

func TestRingOrderAcrossWrapAndResize(t *testing.T) {
	var r ring
	const limit = 100
	next, first := 0, 0 // the payload byte of the next push and of the oldest
	check := func(when string) {
		t.Helper()
		for i := range r.len() {
			if got := int(r.at(i).at); got != first+i {
				t.Fatalf("%s: entry %d is %d, want %d", when, i, got, first+i)
			}
		}
	}
	push := func(n int) {
		for range n {
			if r.len() == limit {
				r.pop()
				first++
			}
			r.push(histEntry{at: int64(next)}, limit)
			next++
		}
	}
	pop := func(n int) {
		for range n {
			r.pop()
			first++
		}
		r.release()
	}
	push(3)
	check("growing")
	push(250) // full and wrapped
	check("wrapped")
	if len(r.buf) != limit {
		t.Fatalf("buffer of %d slots, want the limit %d", len(r.buf), limit)
	}
	pop(80) // 20 left of 100: halved
	check("after the shrink")
	if len(r.buf) != limit/2 {
		t.Fatalf("after trimming to 20: %d slots, want %d", len(r.buf), limit/2)
	}
	push(40)
	check("grown again")
	pop(r.len())
	if r.buf != nil {
		t.Fatalf("empty ring keeps %d slots", len(r.buf))
	}
}

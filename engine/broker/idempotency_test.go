package broker

import (
	"fmt"
	"testing"
)

func TestIdemKeysExpireInOrderAndShrink(t *testing.T) {
	var k idemKeys
	for i := range 1000 {
		if !k.record(fmt.Sprint("k", i), uint64(i+1), int64(i)) {
			t.Fatalf("key %d reported as known", i)
		}
	}
	if n := k.expire(899); n != 900 {
		t.Fatalf("expire(899) forgot %d keys, want 900", n)
	}
	if k.len() != 100 || k.peak != 100 {
		t.Fatalf("after a burst expired: %d keys, peak %d; want 100 in a fresh map", k.len(), k.peak)
	}
	if off, ok := k.lookup("k950", 900); !ok || off != 951 {
		t.Fatalf("k950: %d, %v", off, ok)
	}
	if _, ok := k.lookup("k10", 0); ok {
		t.Fatal("an expired key is still remembered")
	}
	// A key recorded again (its first record expired but not yet
	// forgotten) replaces it; the first record's order entry then does not
	// delete the new one.
	if k.record("k990", 7, 2000) {
		t.Fatal("k990 replaced but reported as new")
	}
	if n := k.expire(999); n != 99 {
		t.Fatalf("expire(999) forgot %d, want 99 (k900..k999 but k990)", n)
	}
	if off, ok := k.lookup("k990", 1500); !ok || off != 7 {
		t.Fatalf("re-recorded k990: %d, %v", off, ok)
	}
	k.expire(2000)
	if k.len() != 0 || k.m != nil || k.order != nil {
		t.Fatalf("all expired: %d keys, map %v, order %d", k.len(), k.m != nil, len(k.order))
	}
}

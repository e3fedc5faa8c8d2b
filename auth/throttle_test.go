package auth

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(testNow.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestAddrKey(t *testing.T) {
	cases := []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::/64"},
		{"2001:db8::ffff:2", "2001:db8::/64"},
		{"2001:db8:0:1::1", "2001:db8:0:1::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not-an-ip", "not-an-ip"},
	}
	for _, c := range cases {
		if got := addrKey(c.in); got != c.want {
			t.Errorf("addrKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestThrottleAddressLockoutExpires(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(ThrottleConfig{AddrBurst: 3, AddrInterval: 10 * time.Second, UserBurst: 1000}, clk.Now)
	for i := range 3 {
		if w := th.Attempt("user"+strconv.Itoa(i), "192.0.2.1"); w != 0 {
			t.Fatalf("attempt %d throttled (%v) within the burst", i, w)
		}
	}
	w := th.Attempt("someone-else", "192.0.2.1")
	if w != 10*time.Second {
		t.Fatalf("attempt past the burst: wait %v, want 10s", w)
	}
	// Other addresses are not affected, nor is the same /64 spared.
	if w := th.Attempt("x", "192.0.2.2"); w != 0 {
		t.Errorf("other address throttled: %v", w)
	}
	// Refused attempts are not counted: hammering does not lengthen the lock.
	for range 1000 {
		th.Attempt("x", "192.0.2.1")
	}
	clk.Advance(w - time.Nanosecond)
	if th.Attempt("x", "192.0.2.1") == 0 {
		t.Fatal("lock lifted before Retry-After")
	}
	clk.Advance(time.Nanosecond)
	if w := th.Attempt("x", "192.0.2.1"); w != 0 {
		t.Fatalf("lock not lifted after Retry-After: %v", w)
	}
	if th.Attempt("x", "192.0.2.1") == 0 {
		t.Fatal("one attempt per interval after the burst, got two")
	}
	clk.Advance(40 * time.Second) // fully drained
	for i := range 3 {
		if w := th.Attempt("x", "192.0.2.1"); w != 0 {
			t.Fatalf("attempt %d after draining throttled: %v", i, w)
		}
	}
}

func TestThrottleIPv6CountsBy64(t *testing.T) {
	th := NewThrottle(ThrottleConfig{AddrBurst: 2, UserBurst: 1000}, newFakeClock().Now)
	th.Attempt("a", "2001:db8::1")
	th.Attempt("a", "2001:db8::2")
	if th.Attempt("a", "2001:db8::3") == 0 {
		t.Error("third address in the same /64 not throttled")
	}
	if th.Attempt("a", "2001:db8:1::1") != 0 {
		t.Error("another /64 throttled")
	}
}

func TestThrottleSuccessIsNotCounted(t *testing.T) {
	th := NewThrottle(ThrottleConfig{AddrBurst: 2, UserBurst: 2}, newFakeClock().Now)
	for i := range 50 {
		if w := th.Attempt("maggie", "192.0.2.1"); w != 0 {
			t.Fatalf("login %d throttled after only successes: %v", i, w)
		}
		th.Succeeded("maggie", "192.0.2.1")
	}
	if n := th.addr.len() + th.user.len(); n != 0 {
		t.Errorf("%d entries left after successes, want 0", n)
	}
}

// Parallel attempts from one address cannot get past the burst together.
func TestThrottleConcurrentAttempts(t *testing.T) {
	th := NewThrottle(ThrottleConfig{AddrBurst: 3, UserBurst: 1000}, newFakeClock().Now)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if th.Attempt("u"+strconv.Itoa(i), "192.0.2.9") == 0 {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 3 {
		t.Fatalf("%d of 64 parallel attempts allowed, want 3", allowed.Load())
	}
}

// An attacker failing against a user from many addresses locks the user for
// its own addresses, but a clean address can still log in, and the lock ends
// shortly after the attack stops.
func TestThrottleUserLockCannotShutOutTheUser(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(ThrottleConfig{UserBurst: 3, UserInterval: time.Minute, AddrBurst: 100, AddrInterval: 10 * time.Second}, clk.Now)
	// A spray from 1000 addresses, each trying several times.
	allowed := 0
	for i := range 1000 {
		addr := "10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250)
		for range 3 {
			if th.Attempt("maggie", addr) == 0 {
				allowed++
			}
		}
	}
	// Each address got one guess once the user was locked, not three.
	if allowed != 1000+2 {
		t.Errorf("spray got %d guesses, want 1002 (burst 3, then one per clean address)", allowed)
	}
	// The attacker's addresses are refused for maggie...
	w := th.Attempt("maggie", "10.0.0.1")
	if w == 0 {
		t.Fatal("attacker's address may keep guessing a locked user")
	}
	if w > 10*time.Second {
		t.Errorf("Retry-After %v is longer than the address needs to come clean", w)
	}
	// ...but not for other users,
	if th.Attempt("bob", "10.0.0.1") != 0 {
		t.Error("attacker's address locked out of other users")
	}
	// and maggie from her own clean address gets in.
	if w := th.Attempt("maggie", "203.0.113.7"); w != 0 {
		t.Fatalf("maggie from a clean address throttled for %v", w)
	}
	th.Succeeded("maggie", "203.0.113.7")
	// The lock ends: forced attempts never pushed it past burst+1 intervals.
	clk.Advance(4 * time.Minute)
	for i := range 3 {
		if w := th.Attempt("maggie", "10.0.0.1"); w != 0 {
			t.Fatalf("attempt %d after the attack stopped throttled: %v", i, w)
		}
	}
}

// Whatever an attacker sends, the tables hold at most MaxEntries each.
func TestThrottleMemoryBounded(t *testing.T) {
	clk := newFakeClock()
	const maxEntries = 256
	th := NewThrottle(ThrottleConfig{MaxEntries: maxEntries, AddrBurst: 5, AddrInterval: time.Hour}, clk.Now)
	// A hot attacker, locked.
	for range 5 {
		th.Attempt("victim", "192.0.2.66")
	}
	if th.Attempt("v", "192.0.2.66") == 0 {
		t.Fatal("hot address not locked")
	}
	// 20,000 distinct addresses and user names, none drained.
	for i := range 20000 {
		addr := "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		th.Attempt("user-"+strconv.Itoa(i), addr)
		clk.Advance(time.Millisecond)
	}
	if n := th.addr.len(); n > maxEntries {
		t.Errorf("address table holds %d entries, cap %d", n, maxEntries)
	}
	if n := th.user.len(); n > maxEntries {
		t.Errorf("user table holds %d entries, cap %d", n, maxEntries)
	}
	// Eviction takes entries nearest to draining, so the hot one stays locked.
	if th.Attempt("v", "192.0.2.66") == 0 {
		t.Error("hot address forgotten under memory pressure")
	}
}

func TestThrottleDisabled(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Disabled: true, AddrBurst: 1}, nil)
	for range 10 {
		if th.Attempt("u", "192.0.2.1") != 0 {
			t.Fatal("disabled throttle throttled")
		}
	}
}

// The cost of a throttle check on every login, parallel, many addresses.
func BenchmarkThrottleAttempt(b *testing.B) {
	th := NewThrottle(ThrottleConfig{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			addr := "10.0." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
			if th.Attempt("maggie", addr) == 0 {
				th.Succeeded("maggie", addr)
			}
		}
	})
}

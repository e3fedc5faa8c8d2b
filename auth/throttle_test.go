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

func sprayAddr(i int) string { return "10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250) }

// A password spray, one guess from each of many addresses, is counted against
// the user across addresses: after UserBurst guesses the rest are refused.
func TestThrottleUserLimitCountsAcrossAddresses(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(ThrottleConfig{UserBurst: 5, UserInterval: time.Minute, AddrBurst: 10, AddrInterval: 30 * time.Second}, clk.Now)
	allowed := 0
	var lastWait time.Duration
	for i := range 100 {
		if w := th.Attempt("maggie", sprayAddr(i)); w == 0 {
			allowed++
		} else {
			lastWait = w
		}
	}
	if allowed != 5 {
		t.Fatalf("100 addresses × 1 guess: %d guesses allowed, want 5 (the user burst)", allowed)
	}
	if lastWait <= 0 || lastWait > time.Minute {
		t.Errorf("Retry-After %v, want at most the user interval", lastWait)
	}
	// The spray goes on at one guess per UserInterval, whatever the count of
	// addresses.
	clk.Advance(time.Minute)
	allowed = 0
	for i := 100; i < 200; i++ {
		if th.Attempt("maggie", sprayAddr(i)) == 0 {
			allowed++
		}
	}
	if allowed != 1 {
		t.Errorf("a minute later %d guesses allowed, want 1", allowed)
	}
	// Other users are not affected.
	if w := th.Attempt("bob", sprayAddr(300)); w != 0 {
		t.Errorf("another user throttled: %v", w)
	}
}

// Making the spray's addresses dirty first (failing against a decoy user)
// does not exempt them from the victim's count: it is kept per pair.
func TestThrottleUserLimitIsPerPair(t *testing.T) {
	th := NewThrottle(ThrottleConfig{UserBurst: 3, AddrBurst: 10}, newFakeClock().Now)
	for i := range 50 {
		th.Attempt("decoy", sprayAddr(i))
	}
	allowed := 0
	for i := range 50 {
		if th.Attempt("maggie", sprayAddr(i)) == 0 {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d guesses against maggie from dirty addresses, want 3", allowed)
	}
}

// One address hammering a user is the address limit's business: it counts
// once against the user, so the user still logs in from elsewhere.
func TestThrottleOneAddressDoesNotLockTheUser(t *testing.T) {
	th := NewThrottle(ThrottleConfig{UserBurst: 2, AddrBurst: 10}, newFakeClock().Now)
	refused := false
	for range 30 {
		refused = th.Attempt("maggie", "198.51.100.1") > 0
	}
	if !refused {
		t.Fatal("30 failures from one address were never refused")
	}
	if w := th.Attempt("maggie", "203.0.113.5"); w != 0 {
		t.Fatalf("maggie from another address refused for %v after one address hammered her", w)
	}
}

// During a spray that has locked maggie, she still logs in from an address
// she logged in from before; from a new one she waits like the attacker.
// The exemption lasts KnownTTL.
func TestThrottleKnownGoodAddressGetsIn(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(ThrottleConfig{UserBurst: 3, UserInterval: time.Minute, AddrBurst: 10,
		KnownTTL: 24 * time.Hour}, clk.Now)
	const home = "203.0.113.7"
	if th.Attempt("maggie", home) != 0 {
		t.Fatal("first login throttled")
	}
	th.Succeeded("maggie", home)
	for i := range 1000 {
		th.Attempt("maggie", sprayAddr(i))
		clk.Advance(10 * time.Millisecond)
	}
	if w := th.Attempt("maggie", "198.18.0.1"); w == 0 {
		t.Fatal("a new address may guess a locked user")
	}
	// Even a typo from home is allowed (within the address limit), then the
	// right password.
	if w := th.Attempt("maggie", home); w != 0 {
		t.Fatalf("maggie at home throttled for %v during the spray", w)
	}
	if w := th.Attempt("maggie", home); w != 0 {
		t.Fatalf("maggie at home throttled for %v after a typo", w)
	}
	th.Succeeded("maggie", home)
	// The exemption is maggie's alone at that address.
	if w := th.Attempt("bob", home); w != 0 {
		t.Fatalf("bob at maggie's home throttled: %v", w)
	}
	// It expires: a day later, with the spray going on, home is a stranger.
	clk.Advance(24*time.Hour + time.Second)
	for i := range 10 {
		th.Attempt("maggie", sprayAddr(2000+i))
	}
	if w := th.Attempt("maggie", home); w == 0 {
		t.Fatal("the known-good exemption outlived KnownTTL")
	}
}

// Successes do not drain the user's count, so the owner logging in often
// gives a spray no extra guesses.
func TestThrottleSuccessDoesNotRefundTheSpray(t *testing.T) {
	th := NewThrottle(ThrottleConfig{UserBurst: 3, AddrBurst: 10}, newFakeClock().Now)
	const home = "203.0.113.7"
	th.Attempt("maggie", home)
	th.Succeeded("maggie", home)
	for i := range 3 {
		th.Attempt("maggie", sprayAddr(i))
	}
	for range 20 {
		th.Attempt("maggie", home)
		th.Succeeded("maggie", home)
	}
	if w := th.Attempt("maggie", sprayAddr(99)); w == 0 {
		t.Fatal("the owner's successes reopened the user's lock")
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
	if n := th.pair.len(); n > maxEntries {
		t.Errorf("pair table holds %d entries, cap %d", n, maxEntries)
	}
	for i := range 20000 {
		th.Succeeded("user-"+strconv.Itoa(i), "192.0.2.1")
	}
	if n := th.known.len(); n > maxEntries {
		t.Errorf("known-good table holds %d entries, cap %d", n, maxEntries)
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

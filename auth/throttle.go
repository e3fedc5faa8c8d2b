package auth

import (
	"net/netip"
	"time"
)

// Login throttling.
//
// Leaky buckets count failed logins: one per client address, one per user
// name (known or not, so that a 429 never tells whether a user exists). A
// bucket lets Burst failures through at once and then one more per
// Interval; it drains by itself, so every lockout ends at most Interval after
// the failures stop. Every attempt that goes on to a bcrypt comparison is
// counted up front (so that parallel requests cannot slip past together) and
// taken back if the password was right; a request refused with 429 is not
// counted, so hammering a locked bucket does not lengthen the lock.
//
//   - An address over its limit gets 429 for every user: this stops one
//     machine guessing many passwords or many users.
//   - The user's bucket counts failures across addresses: a password spray
//     of one guess from each of many addresses fills it after UserBurst
//     guesses, and from then on the whole spray gets one guess per
//     UserInterval. It counts an address's first failure for that user, not
//     each one (a (user, address) table remembers recent failures, for as
//     long as the address's own bucket would): one address hammering a user
//     is the address limit's business, and must not lock the user for
//     everyone else.
//   - A user over its limit gets 429 only from addresses that are not known
//     good for that user. A successful login remembers its (user, address)
//     pair for KnownTTL, and from a known address the user's limit does not
//     apply (the address limit still does). So an attacker failing against
//     maggie from anywhere cannot lock maggie out of the places she logged in
//     from before. From an address she never used, during an ongoing spray,
//     she waits like the attacker, for Retry-After (about one UserInterval).
//
// Memory is bounded whatever an attacker sends: each table holds at most
// MaxEntries 64-bit keyed hashes of names, never the names. An entry in the
// failure tables is only made by an attempt that goes on to a bcrypt
// comparison (tens of milliseconds), so a machine makes at most a few hundred
// new entries a second, and an entry is worthless once its bucket has
// drained; the cap is a backstop. When a shard is full, drained entries are
// dropped first, then the entry nearest to draining, which keeps the hot
// entries of an ongoing attack. Only a correct password makes a known-good
// entry, so an attacker cannot push the owner's out.
//
// The client address is what HandlerConfig.ClientAddr says, by default the
// TCP peer (X-Forwarded-For is not trusted unless that hook reads it). IPv6
// addresses count by their /64, which one host usually owns whole.

// ThrottleConfig sets the login limits. Its zero value gives the defaults.
type ThrottleConfig struct {
	// AddrBurst failures from one address at once, then one per AddrInterval.
	// Defaults 10 and 30s.
	AddrBurst    int
	AddrInterval time.Duration
	// UserBurst failures for one user at once, then one per UserInterval.
	// Defaults 5 and 1m.
	UserBurst    int
	UserInterval time.Duration
	// KnownTTL is how long a successful login exempts its (user, address)
	// pair from the user limit. Default 720h (30 days).
	KnownTTL time.Duration
	// MaxEntries bounds each of the tables (rounded up to a multiple of
	// 16). Default 65536.
	MaxEntries int
	// Disabled turns throttling off (tests, or a proxy that does it).
	Disabled bool
}

// Throttle defaults.
const (
	DefaultAddrBurst    = 10
	DefaultAddrInterval = 30 * time.Second
	DefaultUserBurst    = 5
	DefaultUserInterval = time.Minute
	DefaultKnownTTL     = 30 * 24 * time.Hour
	DefaultMaxEntries   = 1 << 16
)

// Throttle decides whether a login may be tried. Attempt and Succeeded are
// safe to call from many goroutines.
type Throttle struct {
	disabled bool
	now      func() time.Time
	addr     *limiter
	user     *limiter
	pair     *limiter // recent failures of a (user, address) pair
	known    *limiter // (user, address) pairs that logged in: tat is the expiry
}

// NewThrottle returns a throttle with cfg's limits; now is the clock (nil:
// time.Now).
func NewThrottle(cfg ThrottleConfig, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	orDefault := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	orDefaultDur := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	entries := orDefault(cfg.MaxEntries, DefaultMaxEntries)
	addrBurst, addrInterval := orDefault(cfg.AddrBurst, DefaultAddrBurst), orDefaultDur(cfg.AddrInterval, DefaultAddrInterval)
	return &Throttle{
		disabled: cfg.Disabled,
		now:      now,
		addr:     newLimiter(addrBurst, addrInterval, entries),
		user:     newLimiter(orDefault(cfg.UserBurst, DefaultUserBurst), orDefaultDur(cfg.UserInterval, DefaultUserInterval), entries),
		pair:     newLimiter(addrBurst, addrInterval, entries),
		known:    newLimiter(1, orDefaultDur(cfg.KnownTTL, DefaultKnownTTL), entries),
	}
}

// Attempt asks whether a login for user from addr may be tried now. If so it
// returns 0 and counts the attempt as a failure in advance, so that
// concurrent attempts cannot slip past the limit together; call Succeeded if
// the password was right. If not, it returns how long the client should
// wait and counts nothing. Safe from any goroutine.
func (t *Throttle) Attempt(user, addr string) time.Duration {
	if t.disabled {
		return 0
	}
	now := t.now().UnixNano()
	addr = addrKey(addr)
	if wait, _ := t.addr.take(addr, now, false); wait > 0 {
		return time.Duration(wait)
	}
	pair := pairKey(user, addr)
	known := t.known.wait(pair, now) > 0 // a remembered login: tat is its expiry
	_, prevPair := t.pair.take(pair, now, true)
	var wait int64
	if prevPair <= now {
		// This address's first failure for user (lately): it counts against
		// the user, and is refused if the user is locked and addr unknown.
		wait, _ = t.user.take(user, now, known)
	} else if !known {
		wait = t.user.wait(user, now)
	}
	if wait > 0 {
		t.addr.refund(addr, now)
		t.pair.refund(pair, now)
		return time.Duration(wait)
	}
	return 0
}

// Succeeded takes back what Attempt counted for a login that succeeded and
// remembers addr as known good for user. Safe from any goroutine.
func (t *Throttle) Succeeded(user, addr string) {
	if t.disabled {
		return
	}
	now := t.now().UnixNano()
	addr = addrKey(addr)
	pair := pairKey(user, addr)
	t.addr.refund(addr, now)
	if t.pair.refund(pair, now) {
		// The pair is clean again, so Attempt charged the user: take it back.
		t.user.refund(user, now)
	}
	t.known.remember(pair, now)
}

// pairKey names a (user, address) pair; NUL cannot occur in an address key.
func pairKey(user, addr string) string { return addr + "\x00" + user }

// addrKey is the unit an address is counted by: an IPv4 address, or the /64
// of an IPv6 address. A string that is no IP address counts as itself.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// limiter is a bounded table of leaky buckets (GCRA): per key the
// theoretical arrival time tat, in Unix nanoseconds, of the next failure.
// A bucket is full when tat-now exceeds burst*interval.
type limiter struct {
	burst, interval  int64
	hashTable[int64] // key → tat
}

func newLimiter(burst int, interval time.Duration, maxEntries int) *limiter {
	l := &limiter{burst: int64(burst), interval: int64(interval)}
	l.init(maxEntries)
	return l
}

// take counts one failure in key's bucket and returns 0 if it fits; else it
// returns how long until it would fit and counts nothing, unless force is
// set. It also returns the bucket's tat before the call (0 if absent): the
// bucket was empty if that is not after now. A forced failure never fills
// the bucket past one interval over its burst, so forcing cannot lengthen a
// lock without end.
func (l *limiter) take(key string, now int64, force bool) (wait, prevTat int64) {
	s, h := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.m[h]
	next := max(tat, now) + l.interval
	limit := now + l.burst*l.interval
	if next > limit && !force {
		return next - limit, tat
	}
	if !ok && l.full(s) {
		evictDrained(s, now, l.perShard)
	}
	s.m[h] = min(next, limit+l.interval)
	return 0, tat
}

// wait is how long until key's bucket takes one more failure (0: now).
func (l *limiter) wait(key string, now int64) int64 {
	s, h := l.shard(key)
	s.mu.Lock()
	tat := s.m[h]
	s.mu.Unlock()
	return max(0, max(tat, now)+l.interval-(now+l.burst*l.interval))
}

// refund takes one failure out of key's bucket. It reports whether the
// bucket is empty now.
func (l *limiter) refund(key string, now int64) bool {
	s, h := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.m[h]
	if !ok {
		return true
	}
	if tat -= l.interval; tat <= now {
		delete(s.m, h)
		return true
	}
	s.m[h] = tat
	return false
}

// remember sets key's entry to expire one interval from now: the known-good
// table uses tat as an expiry, and wait(key) > 0 while it lasts.
func (l *limiter) remember(key string, now int64) {
	s, h := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[h]; !ok && l.full(s) {
		evictDrained(s, now, l.perShard)
	}
	s.m[h] = now + l.interval
}

// evict makes room: it drops every drained entry and, if that frees less
// than a sixteenth of the shard, the entries nearest to draining (or to
// expiry) until it does. Freeing a batch spreads the cost of the scan over
// many inserts, so a full shard costs O(1) per insert, not O(entries).
// Called with s.mu held.
func evictDrained(s *tableShard[int64], now int64, perShard int) {
	want := max(1, perShard/16)
	freed := 0
	lo, hi := int64(1<<63-1), int64(-1<<63)
	for h, tat := range s.m {
		if tat <= now {
			delete(s.m, h)
			freed++
			continue
		}
		lo, hi = min(lo, tat), max(hi, tat)
	}
	// Widen the cut-off from the lowest entry until enough are gone; the
	// last pass (the whole span) always frees enough.
	for frac := int64(16); freed < want && len(s.m) > 0; frac /= 2 {
		cut := lo + (hi-lo)/max(frac, 1)
		for h, tat := range s.m {
			if freed >= want {
				break
			}
			if tat <= cut {
				delete(s.m, h)
				freed++
			}
		}
		if frac <= 1 {
			break
		}
	}
}

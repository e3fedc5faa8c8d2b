package auth

import "time"

// AddrLimiter counts failures per client address in a bounded table of leaky
// buckets, like the login throttle's address limit, for endpoints that
// authenticate with something other than a password (the publish key). Unlike
// the login throttle it does not count an attempt in advance: a busy backend
// may have many requests in flight, and a correct key must never be refused
// for that. Parallel failures from one address can therefore pass Blocked
// together, at most one per request in flight, which a limit against
// guessing a long random key can afford.
type AddrLimiter struct {
	now func() time.Time
	l   *limiter
}

// NewAddrLimiter lets burst failures through from one address at once and
// then one more per interval. maxEntries bounds the table (0: 65536). now is
// the clock (nil: time.Now).
func NewAddrLimiter(burst int, interval time.Duration, maxEntries int, now func() time.Time) *AddrLimiter {
	if now == nil {
		now = time.Now
	}
	if burst <= 0 {
		burst = 1
	}
	if interval <= 0 {
		interval = time.Second
	}
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &AddrLimiter{now: now, l: newLimiter(burst, interval, maxEntries)}
}

// Blocked returns how long addr must wait before its next attempt, or 0 if
// it may try now. It counts nothing. Safe from any goroutine.
func (a *AddrLimiter) Blocked(addr string) time.Duration {
	return time.Duration(a.l.wait(addrKey(addr), a.now().UnixNano()))
}

// Failed counts one failure for addr. Safe from any goroutine.
func (a *AddrLimiter) Failed(addr string) {
	a.l.take(addrKey(addr), a.now().UnixNano(), true)
}

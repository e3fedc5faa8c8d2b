// Package ratelog bounds how often a repeating cause reaches the log: a
// Limiter lets one line through per interval and counts what it holds back,
// so that a cause that repeats for every event (an accept error, a flood of
// one close reason, a guesser sending wrong keys) costs the log one line
// per interval, not one per event, and the line says how many it stands for.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter lets one message through per Every (0: one second). Its zero
// value is ready to use; it must not be copied after first use. Allow is
// safe from any goroutine and never blocks.
type Limiter struct {
	Every time.Duration

	last       atomic.Int64 // unix nanoseconds of the last message let through
	suppressed atomic.Int64
}

// Allow reports whether a message at now may be logged, and if so how many
// were held back since the last one let through. Safe from any goroutine.
func (r *Limiter) Allow(now time.Time) (ok bool, suppressed int64) {
	every := r.Every
	if every <= 0 {
		every = time.Second
	}
	last := r.last.Load()
	if now.UnixNano()-last < int64(every) || !r.last.CompareAndSwap(last, now.UnixNano()) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}

package auth

import (
	"time"
)

// Per-user ticket quota.
//
// One user (one stolen or buggy token) must not take every slot of the
// ticket store and lock everyone else out, so /ws_ticket issues at most
// MaxTicketsPerUser tickets to one user within one ticket TTL; past it, 429
// with Retry-After. Issued tickets are counted, not live ones: the store
// (which another Store implementation may replace) is not asked when a
// ticket is redeemed. Since no ticket lives longer than the TTL, no user
// ever holds more than the quota of live tickets.
//
// Each user has a ring of quotaSlots counters, each for one slot of
// TTL/(quotaSlots-1): a ticket is counted for between one TTL and 8/7 of
// it, so a user's capacity comes back at most a seventh of a TTL after their
// tickets expire. The table holds 64-bit keyed hashes of user names, at most
// maxEntries of them; a user whose counts are all stale costs nothing and is
// dropped first when a shard is full. Past the cap (more users taking
// tickets within one TTL than maxEntries) some live entries are forgotten,
// so those users' counts restart: the quota fails open there
// rather than refuse a user it knows nothing about.

// DefaultMaxTicketsPerUser is the quota when HandlerConfig leaves it 0.
const DefaultMaxTicketsPerUser = 100

// MaxTicketQuota is the largest quota the counters hold.
const MaxTicketQuota = 1<<16 - 1

const (
	quotaSlots      = 8
	quotaMaxEntries = 1 << 18
)

type ticketQuota struct {
	max                   uint16
	slot                  int64 // nanoseconds per slot
	hashTable[quotaEntry]       // user → counts
}

type quotaEntry struct {
	last   int64 // slot number of the latest update
	counts [quotaSlots]uint16
}

// newTicketQuota allows limit tickets per user within ttl; limit < 1 is no
// quota (nil).
func newTicketQuota(limit int, ttl time.Duration, maxEntries int) *ticketQuota {
	if limit < 1 {
		return nil
	}
	q := &ticketQuota{
		max:  uint16(min(limit, MaxTicketQuota)),
		slot: max(1, (int64(ttl)+quotaSlots-2)/(quotaSlots-1)),
	}
	q.init(maxEntries)
	return q
}

// advance zeroes the slots that have left the window since e.last.
func (e *quotaEntry) advance(slot int64) {
	if slot-e.last >= quotaSlots {
		e.counts = [quotaSlots]uint16{}
	} else {
		for s := e.last + 1; s <= slot; s++ {
			e.counts[s%quotaSlots] = 0
		}
	}
	e.last = max(e.last, slot)
}

func (e *quotaEntry) sum() int {
	n := 0
	for _, c := range e.counts {
		n += int(c)
	}
	return n
}

// take counts one ticket for user at now, or returns how long until the
// user may have one (and counts nothing). Safe from any goroutine.
func (q *ticketQuota) take(user string, now time.Time) time.Duration {
	if q == nil {
		return 0
	}
	ns := now.UnixNano()
	slot := ns / q.slot
	s, h := q.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok && q.full(s) {
		evictStale(s, slot, q.perShard)
	}
	e.advance(slot)
	if e.sum() >= int(q.max) {
		// The oldest slot in the window that holds tickets frees first.
		for o := e.last - quotaSlots + 1; o <= e.last; o++ {
			if o >= 0 && e.counts[o%quotaSlots] > 0 {
				s.m[h] = e
				return time.Duration((o+quotaSlots)*q.slot - ns)
			}
		}
	}
	e.counts[slot%quotaSlots]++
	s.m[h] = e
	return 0
}

// refund takes back the ticket take just counted (the store could not issue
// it). Safe from any goroutine.
func (q *ticketQuota) refund(user string) {
	if q == nil {
		return
	}
	s, h := q.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok {
		return
	}
	for o := e.last; o > e.last-quotaSlots; o-- {
		if c := &e.counts[((o%quotaSlots)+quotaSlots)%quotaSlots]; *c > 0 {
			*c--
			break
		}
	}
	s.m[h] = e
}

// evict makes room in a full shard: it drops every stale entry, and if that
// frees less than a sixteenth of the shard, others until it does, so that the
// sweep's cost is spread over many inserts. Called with s.mu held.
func evictStale(s *tableShard[quotaEntry], slot int64, perShard int) {
	want := max(1, perShard/16)
	freed := 0
	for h, e := range s.m {
		if slot-e.last >= quotaSlots {
			delete(s.m, h)
			freed++
		}
	}
	for h := range s.m {
		if freed >= want {
			break
		}
		delete(s.m, h)
		freed++
	}
}

package ticket

// baseMap is the ticket map as it was before the pointer-free table (commit
// f579509, auth/ticket/map.go), kept verbatim but renamed, only so that the
// benchmarks can measure the current Map beside it. Nothing outside
// benchmarks and the GC/residency comparisons uses it.

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
)

// baseMap is the embedded Store: a fixed-size, sharded hash table of buckets,
// each one cache line holding baseBucketSlots atomic pointers to entries and a
// word of one-byte tags. It never grows and never locks.
//
// A ticket's keyed hash (a per-baseMap random seed, so clients cannot aim at a
// baseShard or a baseBucket) picks a baseShard, a baseBucket and a tag byte. A ticket lives in
// one of its baseBucket's slots, so every lookup — hit, miss or attacker-chosen —
// reads one baseBucket and follows a pointer only where the tag matches (a wrong
// ticket matches a tag with odds of 1 in 256 per slot). Removing an baseEntry
// stores nil in its slot; there are no tombstones. When Issue finds a baseBucket
// full it simply draws another ticket, which lands somewhere else.
//
// Progress: every operation finishes in a bounded number of its own steps,
// whatever other goroutines do (wait-free): Redeem reads one baseBucket and makes
// at most one CAS and one counter add; Sweep takes its budget of slots; Issue
// tries at most baseIssueAttempts fresh tickets, each one baseBucket, plus at most
// one sweep of baseFullSweepBudget slots when it meets a full baseShard. The price of
// bounding Issue is that it may answer ErrFull a little early under
// contention (a lost CAS moves it on rather than retrying forever). Nothing
// ever waits for another goroutine or takes a mutex.
//
// Capacity: at most Capacity tickets are live (issued, not yet redeemed and
// not yet reclaimed) at any moment. The capacity is split evenly across
// shards, and each baseShard has about baseSlotsPerLive slots per ticket it may hold;
// since Issue tries up to baseIssueAttempts fresh tickets (other shards, other
// buckets) before it answers ErrFull, a baseMap fills to nearly all of its
// Capacity before refusing (TestFillReachesCapacity measures it: all of it
// with one baseShard, over 99% with 64 shards of 1024). Expired but not yet
// reclaimed tickets count as live until Issue, Redeem, Sweep or Run reclaims
// them.
//
// Memory: the table is allocated whole by newBaseMap and never grows: about 18
// bytes per unit of Capacity (18 MiB for DefaultCapacity), plus one baseEntry of
// about 128 bytes per live ticket. The garbage collector scans the whole
// table every cycle, and a lookup in a large, sparse table usually misses the
// CPU cache; size Capacity near the real peak of live tickets (issue rate ×
// TTL, with headroom) rather than far above it.
//
// All methods are safe for concurrent use.
type baseMap struct {
	seed      maphash.Seed
	shards    []baseShard
	shardMask uint64
	buckets   uint64 // per baseShard
	now       func() time.Time

	// sweepNext is written by every Sweep: keep it off the line that every
	// Issue and Redeem reads.
	_         [cacheLine]byte
	sweepNext atomic.Uint64
}

// baseMapConfig configures a baseMap. The zero value works.
type baseMapConfig struct {
	// Capacity is the most live tickets; 0 means DefaultCapacity.
	Capacity int
	// Shards is the number of shards, a power of two; 0 picks one from
	// GOMAXPROCS. It is lowered to at most Capacity shards.
	Shards int
	// Now is the clock Run passes to Sweep; nil means time.Now. Issue and
	// Redeem take the time as an argument instead.
	Now func() time.Time
}

const (
	// baseBucketSlots is how many tickets one baseBucket holds: 7 pointers and one
	// tag word fill a 64-byte cache line.
	baseBucketSlots = 7
	// baseSlotsPerLive is how many slots the table has per unit of capacity, so
	// that buckets are at most half full on average and rarely full.
	baseSlotsPerLive = 2
	// baseIssueAttempts is how many fresh tickets Issue tries before ErrFull.
	baseIssueAttempts = 16
	// baseFullSweepBudget is how many slots Issue sweeps in a full baseShard before it
	// gives up on that baseShard.
	baseFullSweepBudget = 256
)

// baseEntry is one issued ticket. Its fields other than published are written
// once before it is stored in a slot and never changed afterwards, so readers
// need no synchronisation beyond the slot's atomic load. Its address is unique
// while any slot or reader holds it, which is what makes the removal CAS
// exactly-once.
type baseEntry struct {
	ticket  Ticket
	expires int64 // unix nanoseconds; the ticket is valid while now < expires
	claims  Claims
	// published is set once the baseEntry's tag is written. Sweepers leave an
	// unpublished baseEntry alone: were it removed and its slot reused before its
	// issuer wrote the tag, that late write would hide the next baseEntry.
	published atomic.Bool
}

// baseBucket is one cache line of the table.
type baseBucket struct {
	// tags holds in byte i the tag of the baseEntry last published in slot i. It
	// is a hint: a stale byte only costs a pointer load, never a wrong answer.
	tags  atomic.Uint64
	slots [baseBucketSlots]atomic.Pointer[baseEntry]
}

// baseShard is one independently addressed part of the table. Its counters sit
// on their own cache line so that counting never contends with the
// read-mostly baseBucket header, nor with another baseShard.
type baseShard struct {
	buckets []baseBucket
	limit   int64 // live tickets allowed in this baseShard
	_       [cacheLine - 32]byte

	issued    atomic.Int64 // successful issues
	redeemed  atomic.Int64
	expired   atomic.Int64
	rejected  atomic.Int64
	sweepNext atomic.Uint64 // next slot Issue sweeps when the baseShard is full
	_         [cacheLine - 40]byte
}

// newBaseMap returns an empty baseMap for cfg. It allocates the whole table at once
// (see baseMap). It panics on a negative Capacity or a Shards that is not a power
// of two, which are programming errors.
func newBaseMap(cfg baseMapConfig) *baseMap {
	capacity := cfg.Capacity
	switch {
	case capacity < 0:
		panic(fmt.Sprintf("ticket: negative capacity %d", capacity))
	case capacity == 0:
		capacity = DefaultCapacity
	}
	shards := cfg.Shards
	switch {
	case shards < 0 || shards&(shards-1) != 0:
		panic(fmt.Sprintf("ticket: shards %d is not a power of two", shards))
	case shards == 0:
		shards = min(ceilPow2(4*runtime.GOMAXPROCS(0)), maxDefaultShards)
	}
	// Every baseShard must be allowed at least one ticket.
	for shards > capacity {
		shards /= 2
	}
	perShard := (capacity + shards - 1) / shards
	buckets := (baseSlotsPerLive*perShard + baseBucketSlots - 1) / baseBucketSlots

	m := &baseMap{
		seed:      maphash.MakeSeed(),
		shards:    make([]baseShard, shards),
		shardMask: uint64(shards - 1),
		buckets:   uint64(buckets),
		now:       cfg.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].buckets = make([]baseBucket, buckets)
		// Spread the remainder so that the limits sum to capacity exactly.
		m.shards[i].limit = int64(capacity / shards)
		if i < capacity%shards {
			m.shards[i].limit++
		}
	}
	return m
}

// locate returns the baseShard and baseBucket of t, and its tag.
func (m *baseMap) locate(t *Ticket) (*baseShard, *baseBucket, uint8) {
	h := maphash.Bytes(m.seed, t[:])
	s := &m.shards[h&m.shardMask]
	// The baseShard takes the low bits (at most 10), the tag bits 16 to 23, and
	// the baseBucket the high bits (h × buckets / 2⁶⁴: uniform over any count).
	i, _ := bits.Mul64(h, m.buckets)
	return s, &s.buckets[i], uint8(h >> 16)
}

// Issue stores c under a fresh ticket valid while now < now+ttl and returns
// the ticket. A ticket never outlives the session it was traded for: when
// c.SessionExpires is set and earlier, the ticket expires then. A ttl ≤ 0
// issues a ticket that never redeems. Issue keeps c as given (the caller must
// not change c.Channels afterwards) and allocates one baseEntry. It fails
// with ErrFull when the baseMap holds its Capacity of live tickets (or a little
// before: see baseMap), and with the crypto/rand error if randomness fails.
// Safe for concurrent use; wait-free (bounded).
func (m *baseMap) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	nowNano := now.UnixNano()
	expires := now.Add(ttl)
	if !c.SessionExpires.IsZero() && c.SessionExpires.Before(expires) {
		expires = c.SessionExpires
	}
	e := &baseEntry{expires: expires.UnixNano(), claims: c}
	swept := false // one sweep per call bounds the cost of a full baseMap
	for range baseIssueAttempts {
		t, err := New()
		if err != nil {
			return Ticket{}, err
		}
		// e is not yet in any slot, so it may still change.
		e.ticket = t
		inserted, didSweep := m.insert(e, nowNano, !swept)
		if inserted {
			return t, nil
		}
		swept = swept || didSweep
	}
	return Ticket{}, ErrFull
}

// insert reserves room in e's baseShard and publishes e in a free or expired
// slot of its baseBucket; if there is none it reports false and leaves no trace.
// When the baseShard is full and sweepIfFull is set, it first sweeps part of the
// baseShard for expired tickets, and reports that it did.
func (m *baseMap) insert(e *baseEntry, nowNano int64, sweepIfFull bool) (inserted, swept bool) {
	s, b, tag := m.locate(&e.ticket)
	if !s.reserve() {
		if !sweepIfFull {
			return false, false
		}
		if m.sweepShard(s, nowNano, baseFullSweepBudget) == 0 || !s.reserve() {
			return false, true
		}
		swept = true
	}
	for i := range b.slots {
		slot := &b.slots[i]
		old := slot.Load()
		if old != nil && !old.reclaimable(nowNano) {
			continue
		}
		// Empty, or expired: take it. Losing the CAS means another issuer
		// or a sweeper got there first; try the next slot.
		if !slot.CompareAndSwap(old, e) {
			continue
		}
		// Only the slot's owner writes its tag byte, and only now. Until the
		// Or the byte is stale or 0, which is harmless: nobody can look for
		// e's ticket before Issue returns it.
		shift := 8 * uint(i)
		b.tags.And(^(0xFF << shift))
		b.tags.Or(uint64(tag) << shift)
		e.published.Store(true)
		if old != nil {
			s.expired.Add(1)
		}
		return true, swept
	}
	s.issued.Add(-1) // give the reservation back
	return false, swept
}

// reclaimable reports whether e has expired at nowNano and may be removed.
func (e *baseEntry) reclaimable(nowNano int64) bool {
	return nowNano >= e.expires && e.published.Load()
}

// reserve counts one more live ticket in s unless that would pass its limit.
// Concurrent reservations never pass it together: each sees its own add.
func (s *baseShard) reserve() bool {
	issued := s.issued.Add(1)
	if issued-s.redeemed.Load()-s.expired.Load() <= s.limit {
		return true
	}
	s.issued.Add(-1)
	return false
}

// Byte-wise constants for matching a tag against all of a baseBucket's tags.
const (
	baseLowBits  = 0x0101010101010101
	baseHighBits = 0x0080808080808080 // the top byte holds no slot
)

// baseMatchTags returns a mask with the high bit set in the byte of every slot
// whose tag is tag (and, rarely, of a slot just above one: the ticket
// comparison that follows weeds those out).
func baseMatchTags(tags uint64, tag uint8) uint64 {
	x := tags ^ (baseLowBits * uint64(tag))
	return (x - baseLowBits) &^ x & baseHighBits
}

// Redeem parses text as a ticket and consumes it: of any number of concurrent
// calls with the same ticket, exactly one gets the claims, and only while now
// is before the ticket's expiry. Malformed, unknown, expired and used tickets
// all fail with ErrInvalid. Safe for concurrent use; wait-free; never
// allocates.
func (m *baseMap) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		// Spread the count of malformed texts over shards like the rest.
		m.shards[maphash.Bytes(m.seed, text)&m.shardMask].rejected.Add(1)
		return Claims{}, ErrInvalid
	}
	s, b, tag := m.locate(&t)
	for match := baseMatchTags(b.tags.Load(), tag); match != 0; match &= match - 1 {
		slot := &b.slots[bits.TrailingZeros64(match)/8]
		e := slot.Load()
		if e == nil || e.ticket != t {
			continue
		}
		// Found. Removing it is the one step that decides who wins: an
		// baseEntry's address is unique, so only one CAS from it can succeed.
		won := slot.CompareAndSwap(e, nil)
		switch {
		case won && now.UnixNano() < e.expires:
			s.redeemed.Add(1)
			return e.claims, nil
		case won:
			s.expired.Add(1)
		}
		break
	}
	s.rejected.Add(1)
	return Claims{}, ErrInvalid
}

// Sweep reclaims expired tickets (expiry ≤ now) from up to budget slots,
// continuing where the previous Sweep stopped and walking the table baseShard by
// baseShard, and returns how many it reclaimed. It never stops a baseShard: Issue and
// Redeem run on beside it. Safe for concurrent use; concurrent Sweeps take
// disjoint runs of slots.
func (m *baseMap) Sweep(now time.Time, budget int) int {
	if budget <= 0 {
		return 0
	}
	nowNano := now.UnixNano()
	perShard := m.buckets * baseBucketSlots
	pos := (m.sweepNext.Add(uint64(budget)) - uint64(budget)) % m.slotCount()
	reclaimed := 0
	for range budget {
		s := &m.shards[pos/perShard]
		if s.reclaim(pos%perShard, nowNano) {
			reclaimed++
		}
		if pos++; pos == m.slotCount() {
			pos = 0
		}
	}
	return reclaimed
}

// slotCount is the number of slots in the table.
func (m *baseMap) slotCount() uint64 {
	return uint64(len(m.shards)) * m.buckets * baseBucketSlots
}

// sweepShard reclaims expired tickets from up to budget slots of s,
// continuing where its previous sweep stopped, and returns how many it
// reclaimed.
func (m *baseMap) sweepShard(s *baseShard, nowNano int64, budget int) int {
	perShard := m.buckets * baseBucketSlots
	pos := (s.sweepNext.Add(uint64(budget)) - uint64(budget)) % perShard
	reclaimed := 0
	for range budget {
		if s.reclaim(pos, nowNano) {
			reclaimed++
		}
		if pos++; pos == perShard {
			pos = 0
		}
	}
	return reclaimed
}

// reclaim empties slot i of s if it holds a ticket expired at nowNano.
func (s *baseShard) reclaim(i uint64, nowNano int64) bool {
	slot := &s.buckets[i/baseBucketSlots].slots[i%baseBucketSlots]
	e := slot.Load()
	if e == nil || !e.reclaimable(nowNano) || !slot.CompareAndSwap(e, nil) {
		return false
	}
	s.expired.Add(1)
	return true
}

// Run sweeps the whole table once every interval (every ≤ 0 means one
// second), in slices so that no single Sweep runs long, until ctx is done. It
// uses baseMapConfig.Now as the clock. An interval near the ticket TTL keeps
// expired tickets from lingering much longer than they lived. Run it on its
// own goroutine; it returns when ctx is done.
func (m *baseMap) Run(ctx context.Context, every time.Duration) {
	const slice = 4096
	if every <= 0 {
		every = time.Second
	}
	total := int(m.slotCount())
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if m.Stats().Live == 0 {
			continue // an idle server need not read the whole table
		}
		for done := 0; done < total; done += slice {
			if ctx.Err() != nil {
				return
			}
			m.Sweep(m.now(), min(slice, total-done))
		}
	}
}

// Stats returns the counters summed over all shards. Safe for concurrent use;
// it reads each baseShard's counters without stopping anything.
func (m *baseMap) Stats() Stats {
	var st Stats
	for i := range m.shards {
		s := &m.shards[i]
		// Load the decrements first so Live is never below the truth.
		redeemed := s.redeemed.Load()
		expired := s.expired.Load()
		issued := s.issued.Load()
		st.Issued += uint64(issued)
		st.Redeemed += uint64(redeemed)
		st.Expired += uint64(expired)
		st.Rejected += uint64(s.rejected.Load())
		st.Live += issued - redeemed - expired
	}
	return st
}

// Capacity returns the most live tickets m holds. Safe for concurrent use.
func (m *baseMap) Capacity() int {
	n := 0
	for i := range m.shards {
		n += int(m.shards[i].limit)
	}
	return n
}

// put inserts a given ticket, for benchmarks only.
func (m *baseMap) put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	e := &baseEntry{ticket: t, expires: now.Add(ttl).UnixNano(), claims: c}
	if inserted, _ := m.insert(e, now.UnixNano(), true); !inserted {
		return t, ErrFull
	}
	return t, nil
}

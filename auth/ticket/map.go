package ticket

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
)

// Map is the embedded Store: a fixed-size, sharded hash table of buckets,
// each one cache line holding bucketSlots atomic pointers to entries and a
// word of one-byte tags. It never grows and never locks.
//
// A ticket's keyed hash (a per-Map random seed, so clients cannot aim at a
// shard or a bucket) picks a shard, a bucket and a tag byte. A ticket lives in
// one of its bucket's slots, so every lookup — hit, miss or attacker-chosen —
// reads one bucket and follows a pointer only where the tag matches (a wrong
// ticket matches a tag with odds of 1 in 256 per slot). Removing an entry
// stores nil in its slot; there are no tombstones. When Issue finds a bucket
// full it simply draws another ticket, which lands somewhere else.
//
// Progress: every operation finishes in a bounded number of its own steps,
// whatever other goroutines do (wait-free): Redeem reads one bucket and makes
// at most one CAS and one counter add; Sweep takes its budget of slots; Issue
// tries at most issueAttempts fresh tickets, each one bucket, plus at most
// one sweep of fullSweepBudget slots when it meets a full shard. The price of
// bounding Issue is that it may answer ErrFull a little early under
// contention (a lost CAS moves it on rather than retrying forever). Nothing
// ever waits for another goroutine or takes a mutex.
//
// Capacity: at most Capacity tickets are live (issued, not yet redeemed and
// not yet reclaimed) at any moment. The capacity is split evenly across
// shards, and each shard has about slotsPerLive slots per ticket it may hold;
// since Issue tries up to issueAttempts fresh tickets (other shards, other
// buckets) before it answers ErrFull, a Map fills to nearly all of its
// Capacity before refusing (TestFillReachesCapacity measures it: all of it
// with one shard, over 99% with 64 shards of 1024). Expired but not yet
// reclaimed tickets count as live until Issue, Redeem, Sweep or Run reclaims
// them.
//
// Memory: the table is allocated whole by NewMap and never grows: about 18
// bytes per unit of Capacity (18 MiB for DefaultCapacity), plus one entry of
// about 128 bytes per live ticket. The garbage collector scans the whole
// table every cycle, and a lookup in a large, sparse table usually misses the
// CPU cache; size Capacity near the real peak of live tickets (issue rate ×
// TTL, with headroom) rather than far above it.
//
// All methods are safe for concurrent use.
type Map struct {
	seed      maphash.Seed
	shards    []shard
	shardMask uint64
	buckets   uint64 // per shard
	now       func() time.Time

	// sweepNext is written by every Sweep: keep it off the line that every
	// Issue and Redeem reads.
	_         [cacheLine]byte
	sweepNext atomic.Uint64
}

// MapConfig configures a Map. The zero value works.
type MapConfig struct {
	// Capacity is the most live tickets; 0 means DefaultCapacity.
	Capacity int
	// Shards is the number of shards, a power of two; 0 picks one from
	// GOMAXPROCS. It is lowered to at most Capacity shards.
	Shards int
	// Now is the clock Run passes to Sweep; nil means time.Now. Issue and
	// Redeem take the time as an argument instead.
	Now func() time.Time
}

// DefaultCapacity is the Capacity of a zero MapConfig (the -ticket-capacity
// default).
const DefaultCapacity = 1 << 20

const (
	// bucketSlots is how many tickets one bucket holds: 7 pointers and one
	// tag word fill a 64-byte cache line.
	bucketSlots = 7
	// slotsPerLive is how many slots the table has per unit of capacity, so
	// that buckets are at most half full on average and rarely full.
	slotsPerLive = 2
	// issueAttempts is how many fresh tickets Issue tries before ErrFull.
	issueAttempts = 16
	// fullSweepBudget is how many slots Issue sweeps in a full shard before it
	// gives up on that shard.
	fullSweepBudget = 256
	// maxDefaultShards caps the shard count picked from GOMAXPROCS.
	maxDefaultShards = 1024
	// cacheLine is the assumed size of a CPU cache line, for padding.
	cacheLine = 64
)

// entry is one issued ticket. Its fields other than published are written
// once before it is stored in a slot and never changed afterwards, so readers
// need no synchronisation beyond the slot's atomic load. Its address is unique
// while any slot or reader holds it, which is what makes the removal CAS
// exactly-once.
type entry struct {
	ticket  Ticket
	expires int64 // unix nanoseconds; the ticket is valid while now < expires
	claims  Claims
	// published is set once the entry's tag is written. Sweepers leave an
	// unpublished entry alone: were it removed and its slot reused before its
	// issuer wrote the tag, that late write would hide the next entry.
	published atomic.Bool
}

// bucket is one cache line of the table.
type bucket struct {
	// tags holds in byte i the tag of the entry last published in slot i. It
	// is a hint: a stale byte only costs a pointer load, never a wrong answer.
	tags  atomic.Uint64
	slots [bucketSlots]atomic.Pointer[entry]
}

// shard is one independently addressed part of the table. Its counters sit
// on their own cache line so that counting never contends with the
// read-mostly bucket header, nor with another shard.
type shard struct {
	buckets []bucket
	limit   int64 // live tickets allowed in this shard
	_       [cacheLine - 32]byte

	issued    atomic.Int64 // successful issues
	redeemed  atomic.Int64
	expired   atomic.Int64
	rejected  atomic.Int64
	sweepNext atomic.Uint64 // next slot Issue sweeps when the shard is full
	_         [cacheLine - 40]byte
}

// Stats is a snapshot of a Map's counters. The fields are summed shard by
// shard without stopping anything, so they need not be mutually consistent
// to the last operation.
type Stats struct {
	Issued   uint64 // tickets issued
	Redeemed uint64 // tickets redeemed (connections admitted)
	Rejected uint64 // failed redeems: malformed, unknown, expired or used
	Expired  uint64 // expired tickets reclaimed
	Live     int64  // tickets held: issued and not redeemed nor reclaimed
}

// NewMap returns an empty Map for cfg. It allocates the whole table at once
// (see Map). It panics on a negative Capacity or a Shards that is not a power
// of two, which are programming errors.
func NewMap(cfg MapConfig) *Map {
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
	// Every shard must be allowed at least one ticket.
	for shards > capacity {
		shards /= 2
	}
	perShard := (capacity + shards - 1) / shards
	buckets := (slotsPerLive*perShard + bucketSlots - 1) / bucketSlots

	m := &Map{
		seed:      maphash.MakeSeed(),
		shards:    make([]shard, shards),
		shardMask: uint64(shards - 1),
		buckets:   uint64(buckets),
		now:       cfg.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].buckets = make([]bucket, buckets)
		// Spread the remainder so that the limits sum to capacity exactly.
		m.shards[i].limit = int64(capacity / shards)
		if i < capacity%shards {
			m.shards[i].limit++
		}
	}
	return m
}

// ceilPow2 returns the least power of two ≥ n (1 for n ≤ 1).
func ceilPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// locate returns the shard and bucket of t, and its tag.
func (m *Map) locate(t *Ticket) (*shard, *bucket, uint8) {
	h := maphash.Bytes(m.seed, t[:])
	s := &m.shards[h&m.shardMask]
	// The shard takes the low bits (at most 10), the tag bits 16 to 23, and
	// the bucket the high bits (h × buckets / 2⁶⁴: uniform over any count).
	i, _ := bits.Mul64(h, m.buckets)
	return s, &s.buckets[i], uint8(h >> 16)
}

// Issue stores c under a fresh ticket valid while now < now+ttl and returns
// the ticket. A ticket never outlives the session it was traded for: when
// c.SessionExpires is set and earlier, the ticket expires then. A ttl ≤ 0
// issues a ticket that never redeems. Issue keeps c as given (the caller must
// not change c.Channels afterwards) and allocates one entry. It fails
// with ErrFull when the Map holds its Capacity of live tickets (or a little
// before: see Map), and with the crypto/rand error if randomness fails.
// Safe for concurrent use; wait-free (bounded).
func (m *Map) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	nowNano := now.UnixNano()
	expires := now.Add(ttl)
	if !c.SessionExpires.IsZero() && c.SessionExpires.Before(expires) {
		expires = c.SessionExpires
	}
	e := &entry{expires: expires.UnixNano(), claims: c}
	swept := false // one sweep per call bounds the cost of a full Map
	for range issueAttempts {
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

// insert reserves room in e's shard and publishes e in a free or expired
// slot of its bucket; if there is none it reports false and leaves no trace.
// When the shard is full and sweepIfFull is set, it first sweeps part of the
// shard for expired tickets, and reports that it did.
func (m *Map) insert(e *entry, nowNano int64, sweepIfFull bool) (inserted, swept bool) {
	s, b, tag := m.locate(&e.ticket)
	if !s.reserve() {
		if !sweepIfFull {
			return false, false
		}
		if m.sweepShard(s, nowNano, fullSweepBudget) == 0 || !s.reserve() {
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
func (e *entry) reclaimable(nowNano int64) bool {
	return nowNano >= e.expires && e.published.Load()
}

// reserve counts one more live ticket in s unless that would pass its limit.
// Concurrent reservations never pass it together: each sees its own add.
func (s *shard) reserve() bool {
	issued := s.issued.Add(1)
	if issued-s.redeemed.Load()-s.expired.Load() <= s.limit {
		return true
	}
	s.issued.Add(-1)
	return false
}

// Byte-wise constants for matching a tag against all of a bucket's tags.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x0080808080808080 // the top byte holds no slot
)

// matchTags returns a mask with the high bit set in the byte of every slot
// whose tag is tag (and, rarely, of a slot just above one: the ticket
// comparison that follows weeds those out).
func matchTags(tags uint64, tag uint8) uint64 {
	x := tags ^ (lowBits * uint64(tag))
	return (x - lowBits) &^ x & highBits
}

// Redeem parses text as a ticket and consumes it: of any number of concurrent
// calls with the same ticket, exactly one gets the claims, and only while now
// is before the ticket's expiry. Malformed, unknown, expired and used tickets
// all fail with ErrInvalid. Safe for concurrent use; wait-free; never
// allocates.
func (m *Map) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		// Spread the count of malformed texts over shards like the rest.
		m.shards[maphash.Bytes(m.seed, text)&m.shardMask].rejected.Add(1)
		return Claims{}, ErrInvalid
	}
	s, b, tag := m.locate(&t)
	for match := matchTags(b.tags.Load(), tag); match != 0; match &= match - 1 {
		slot := &b.slots[bits.TrailingZeros64(match)/8]
		e := slot.Load()
		if e == nil || e.ticket != t {
			continue
		}
		// Found. Removing it is the one step that decides who wins: an
		// entry's address is unique, so only one CAS from it can succeed.
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
// continuing where the previous Sweep stopped and walking the table shard by
// shard, and returns how many it reclaimed. It never stops a shard: Issue and
// Redeem run on beside it. Safe for concurrent use; concurrent Sweeps take
// disjoint runs of slots.
func (m *Map) Sweep(now time.Time, budget int) int {
	if budget <= 0 {
		return 0
	}
	nowNano := now.UnixNano()
	perShard := m.buckets * bucketSlots
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
func (m *Map) slotCount() uint64 {
	return uint64(len(m.shards)) * m.buckets * bucketSlots
}

// sweepShard reclaims expired tickets from up to budget slots of s,
// continuing where its previous sweep stopped, and returns how many it
// reclaimed.
func (m *Map) sweepShard(s *shard, nowNano int64, budget int) int {
	perShard := m.buckets * bucketSlots
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
func (s *shard) reclaim(i uint64, nowNano int64) bool {
	slot := &s.buckets[i/bucketSlots].slots[i%bucketSlots]
	e := slot.Load()
	if e == nil || !e.reclaimable(nowNano) || !slot.CompareAndSwap(e, nil) {
		return false
	}
	s.expired.Add(1)
	return true
}

// Run sweeps the whole table once every interval (every ≤ 0 means one
// second), in slices so that no single Sweep runs long, until ctx is done. It
// uses MapConfig.Now as the clock. An interval near the ticket TTL keeps
// expired tickets from lingering much longer than they lived. Run it on its
// own goroutine; it returns when ctx is done.
func (m *Map) Run(ctx context.Context, every time.Duration) {
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
// it reads each shard's counters without stopping anything.
func (m *Map) Stats() Stats {
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
func (m *Map) Capacity() int {
	n := 0
	for i := range m.shards {
		n += int(m.shards[i].limit)
	}
	return n
}

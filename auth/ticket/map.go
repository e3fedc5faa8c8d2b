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

// Map is the embedded Store: a fixed-size, sharded, open-addressed table of
// atomic pointers to entries. It never grows and never locks.
//
// A ticket's keyed hash (a per-Map random seed, so clients cannot aim at a
// shard or a slot) picks a shard and a start slot; the ticket lives in one of
// the window slots that follow. A lookup reads the whole window, so removing
// an entry simply stores nil (no tombstones), and any lookup — hit, miss or
// attacker-chosen — costs at most window slot reads.
//
// Progress: every operation finishes in a bounded number of its own steps,
// whatever other goroutines do (wait-free): Redeem takes at most window slot
// loads, one CAS and one counter add; Sweep takes its budget of slots; Issue
// makes at most issueAttempts probes of window slots, plus at most one sweep
// of fullSweepBudget slots per full shard it meets. The price of bounding
// Issue is that it may answer ErrFull a little early under contention (a
// lost CAS moves it on rather than retrying forever). Nothing ever waits for
// another goroutine or takes a mutex.
//
// Capacity: at most Capacity tickets are live (issued, not yet redeemed and
// not yet reclaimed) at any moment. The capacity is split evenly across
// shards; Issue tries up to issueAttempts fresh tickets (so other shards and
// windows) before it answers ErrFull, so a Map fills to nearly all of its
// Capacity before refusing; TestFillReachesCapacity measures how near.
// Expired but not yet reclaimed tickets count as live until Issue, Redeem,
// Sweep or Run reclaims them.
//
// All methods are safe for concurrent use.
type Map struct {
	seed      maphash.Seed
	shards    []shard
	shardMask uint64
	shardBits uint
	slotMask  uint64 // slots per shard - 1
	slotBits  uint   // log2(slots per shard)
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
	// window is how many consecutive slots may hold a ticket: the bound on
	// every lookup. 8 pointers are one 64-byte cache line.
	window = 8
	// slotsPerLive is how many slots the table has per unit of capacity; at
	// most half the slots are ever full, so a window is rarely all full.
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

// entry is one issued ticket. It is written once before it is published into
// a slot and never changed afterwards, so readers need no synchronisation
// beyond the slot's atomic load. Its address is unique while any slot or
// reader holds it, which is what makes the removal CAS exactly-once.
type entry struct {
	ticket  Ticket
	expires int64 // unix nanoseconds; the ticket is valid while now < expires
	claims  Claims
}

// shard is one independently addressed part of the table. Its counters sit
// on their own cache line so that counting never contends with the
// read-mostly slot header, nor with another shard.
type shard struct {
	slots []atomic.Pointer[entry]
	limit int64 // live tickets allowed in this shard
	_     [cacheLine - 32]byte

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
// (about 16 bytes per unit of Capacity, plus one entry per live ticket).
// It panics on a negative Capacity or a Shards that is not a power of two,
// which are programming errors.
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
	slots := max(ceilPow2(slotsPerLive*perShard), window)

	m := &Map{
		seed:      maphash.MakeSeed(),
		shards:    make([]shard, shards),
		shardMask: uint64(shards - 1),
		shardBits: uint(bits.TrailingZeros(uint(shards))),
		slotMask:  uint64(slots - 1),
		slotBits:  uint(bits.TrailingZeros(uint(slots))),
		now:       cfg.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].slots = make([]atomic.Pointer[entry], slots)
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

// locate returns the shard of t and the first slot of its window.
func (m *Map) locate(t *Ticket) (*shard, uint64) {
	h := maphash.Bytes(m.seed, t[:])
	// The shard takes the low bits; the slot takes the high ones so that the
	// two stay independent.
	return &m.shards[h&m.shardMask], h >> (64 - m.slotBits)
}

// Issue stores c under a fresh ticket valid while now < now+ttl and returns
// the ticket. A ticket never outlives the session it was traded for: when
// c.SessionExpires is set and earlier, the ticket expires then. A ttl ≤ 0
// issues a ticket that never redeems. Issue allocates one entry. It fails
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
	for range issueAttempts {
		t, err := New()
		if err != nil {
			return Ticket{}, err
		}
		// e is not yet published, so it may still change.
		e.ticket = t
		s, start := m.locate(&t)
		if m.insert(s, start, e, nowNano) {
			return t, nil
		}
	}
	return Ticket{}, ErrFull
}

// insert reserves room in s and publishes e in the window at start.
func (m *Map) insert(s *shard, start uint64, e *entry, nowNano int64) bool {
	if !s.reserve() {
		// Reclaim what has expired in this shard, then try once more.
		if s.sweep(m.slotMask, nowNano, fullSweepBudget) == 0 || !s.reserve() {
			return false
		}
	}
	for k := range uint64(window) {
		slot := &s.slots[(start+k)&m.slotMask]
		old := slot.Load()
		if old != nil && nowNano < old.expires {
			continue
		}
		// Empty, or expired: take it. Losing the CAS means another issuer
		// or a sweeper got there first; keep probing.
		if slot.CompareAndSwap(old, e) {
			if old != nil {
				s.expired.Add(1)
			}
			return true
		}
	}
	s.issued.Add(-1) // give the reservation back
	return false
}

// reserve counts one more live ticket in s unless that would pass limit.
// Concurrent reservations never pass it together: each sees its own add.
func (s *shard) reserve() bool {
	issued := s.issued.Add(1)
	if issued-s.redeemed.Load()-s.expired.Load() <= s.limit {
		return true
	}
	s.issued.Add(-1)
	return false
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
	nowNano := now.UnixNano()
	s, start := m.locate(&t)
	for k := range uint64(window) {
		slot := &s.slots[(start+k)&m.slotMask]
		e := slot.Load()
		if e == nil || e.ticket != t {
			continue
		}
		// Found. Removing it is the one step that decides who wins: an
		// entry's address is unique, so only one CAS from it can succeed.
		won := slot.CompareAndSwap(e, nil)
		switch {
		case won && nowNano < e.expires:
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
	total := uint64(len(m.shards)) << m.slotBits
	first := m.sweepNext.Add(uint64(budget)) - uint64(budget)
	reclaimed := 0
	for i := range uint64(budget) {
		pos := (first + i) & (total - 1)
		s := &m.shards[pos>>m.slotBits]
		if s.reclaim(&s.slots[pos&m.slotMask], nowNano) {
			reclaimed++
		}
	}
	return reclaimed
}

// sweep reclaims expired tickets from up to budget slots of s, continuing
// from where its previous sweep stopped, and returns how many it reclaimed.
func (s *shard) sweep(slotMask uint64, nowNano int64, budget int) int {
	first := s.sweepNext.Add(uint64(budget)) - uint64(budget)
	reclaimed := 0
	for i := range uint64(budget) {
		if s.reclaim(&s.slots[(first+i)&slotMask], nowNano) {
			reclaimed++
		}
	}
	return reclaimed
}

// reclaim empties slot if it holds a ticket expired at nowNano.
func (s *shard) reclaim(slot *atomic.Pointer[entry], nowNano int64) bool {
	e := slot.Load()
	if e == nil || nowNano < e.expires || !slot.CompareAndSwap(e, nil) {
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
	total := len(m.shards) << m.slotBits
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
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

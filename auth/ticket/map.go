package ticket

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"
)

// Map is the embedded Store: a sharded table of fixed-size slots made of
// plain words, which the garbage collector never scans, grown segment by
// segment with the number of live tickets, and a byte arena for the claims.
// It never locks.
//
// Addressing: a ticket names its slot. Issue picks a free slot, then makes
// the ticket from the slot's number (32 bits) and 96 random bits from
// crypto/rand, enciphered together under the Map's random key by a keyed
// 128-bit permutation (see mint), so tickets look like 128 random bits and
// reveal nothing of the table. Redeem deciphers the text it is given, reads
// that one slot and compares all 128 bits of the ticket stored there: a
// guess succeeds only by matching the 96 random bits of a live ticket (odds
// of 2⁻⁹⁶ per guess even for someone who knew the key), and most guesses
// name a slot that does not exist, so they are refused without touching the
// table at all.
//
// A slot is four words: the ticket (two words), its expiry, and a state word
// holding free/busy/live, a generation that changes each time the slot is
// taken, and the claims' place in the arena. Issue takes a free slot by a CAS
// to busy, writes the words, then publishes the state live; Redeem and the
// sweepers remove a live ticket by one CAS of the exact state word they
// read, so of any number of concurrent redeems exactly one wins, and the
// generation keeps a slot reused in between from matching.
//
// Progress: every operation finishes in a bounded number of its own steps,
// whatever other goroutines do (wait-free): Redeem reads one slot and makes
// at most one CAS and a few counter adds; Sweep takes its budget of slots;
// Issue probes a bounded number of slots in at most every shard once, plus
// one sweep of fullSweepBudget slots when its first shard is full. A lost
// CAS moves Issue on rather than retrying, so under contention it may answer
// ErrFull a little early. Nothing waits for another goroutine.
//
// Capacity: at most Capacity tickets are live (issued, not yet redeemed and
// not yet reclaimed) at any moment, split evenly across shards; Issue tries
// every shard before ErrFull, so a Map fills to its whole Capacity. Expired
// but not yet reclaimed tickets count as live until Issue, Redeem, Sweep or
// Run reclaims them. The claims of the live tickets may take 256 bytes per
// unit of Capacity on average (a typical record is under 100); past that,
// too, Issue answers ErrFull.
//
// Memory: NewMap allocates only directories (about 16 bytes per 1024 units
// of Capacity for the table, and half a byte per unit for the arena's chunk
// directory, the one part the collector scans: 512 KiB at 1M). Slots (32
// bytes each) come in segments of up to 1024 (32 KiB) as the live count
// grows, up to 2 slots per unit of Capacity; Issue reuses freed slots first
// and grows a shard only while it has fewer than about 5 slots per 4 live
// tickets, so the table stays about 1.25 times the peak of live tickets. A
// ticket's claims take their encoded size (32 bytes plus 16 per channel
// plus the strings) in 4 KiB chunks; a chunk goes back to the collector
// once every ticket in it is gone and no redeemed Claims still refers to
// its strings (a caller that keeps a Subject for hours and wants no chunk
// pinned by it can strings.Clone it). Neither slots nor chunks hold
// pointers, so the collector marks them without scanning them, whatever the
// number of tickets.
//
// All methods are safe for concurrent use.
type Map struct {
	seed      maphash.Seed // spreads the counts of malformed texts
	key       [mintRounds]uint64
	shards    []shard
	shardMask uint64
	localBits uint   // a slot number is shard<<localBits | local slot
	segShift  uint   // a local slot is segment<<segShift | index
	maxSlots  uint64 // per shard
	arena     arena
	now       func() time.Time

	// sweepNext is written by every Sweep: keep it off the line that every
	// Issue and Redeem reads.
	_         [cacheLine]byte
	sweepNext atomic.Uint64
}

// MapConfig configures a Map. The zero value works.
type MapConfig struct {
	// Capacity is the most live tickets; 0 means DefaultCapacity. At most
	// MaxCapacity.
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

// MaxCapacity is the largest Capacity a Map takes: slot numbers are 32 bits
// and there are up to two slots per unit of capacity.
const MaxCapacity = 1 << 30

const (
	// slotsPerLive is how many slots a shard may grow to per ticket it may
	// hold, so that Issue finds a free slot within a few probes.
	slotsPerLive = 2
	// maxSegSlots is the most slots in one segment (32 KiB).
	maxSegSlots = 1024
	// probes is how many slots Issue tries at the shard's cursor before it
	// grows the shard by one slot.
	probes = 8
	// fullProbes is how many slots Issue tries when the shard cannot grow.
	fullProbes = 64
	// fullSweepBudget is how many slots Issue sweeps in a full shard before it
	// moves to the next shard.
	fullSweepBudget = 256
	// maxDefaultShards caps the shard count picked from GOMAXPROCS.
	maxDefaultShards = 1024
	// cacheLine is the assumed size of a CPU cache line, for padding.
	cacheLine = 64
)

// slot is one ticket's place in the table: plain words only.
type slot struct {
	state atomic.Uint64 // see the state word's layout below
	k0    atomic.Uint64 // the ticket's bytes 0–7, little endian
	k1    atomic.Uint64 // bytes 8–15
	exp   atomic.Int64  // unix nanoseconds; valid while now < exp
}

// segment is a run of slots allocated at once. It holds no pointer, so the
// garbage collector never scans it.
type segment [maxSegSlots]slot

// The state word: bits 0–1 the kind, bits 2–23 the generation, bits 24–63
// the claims' reference in the arena (see arena.ref).
const (
	kindFree  = 0 // no ticket; the generation is the last one's
	kindBusy  = 1 // an issuer is writing the slot
	kindLive  = 2 // holds a ticket
	kindMask  = 3
	genShift  = 2
	genBits   = 22
	genMask   = (1<<genBits - 1) << genShift
	refShift  = genShift + genBits
	stateMask = 1<<refShift - 1
)

func kindOf(st uint64) uint64 { return st & kindMask }
func refOf(st uint64) uint64  { return st >> refShift }

// nextBusy is the busy state that takes a slot whose state is st: a new
// generation, so that a CAS of any earlier state word of the slot fails.
func nextBusy(st uint64) uint64 {
	return (st+1<<genShift)&genMask | kindBusy
}

// freed is the state that removes the ticket of state st.
func freed(st uint64) uint64 { return st & genMask }

// shard is one independently counted and grown part of the table. Its
// counters sit on their own cache lines so that counting never contends with
// the read-mostly header, nor with another shard.
type shard struct {
	segs  []atomic.Pointer[segment] // nil until grown into
	limit int64                     // live tickets allowed in this shard
	_     [cacheLine - 32]byte

	top       atomic.Uint64 // slots handed out by growth (may pass maxSlots)
	cursor    atomic.Uint64 // next slot Issue probes
	sweepNext atomic.Uint64 // next slot Issue sweeps when the shard is full
	_         [cacheLine - 24]byte

	issued   atomic.Int64 // successful issues
	redeemed atomic.Int64
	expired  atomic.Int64
	rejected atomic.Int64
	_        [cacheLine - 32]byte
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

// NewMap returns an empty Map for cfg. It allocates only directories; the
// table and the arena grow with use (see Map). It panics on a Capacity that
// is negative or above MaxCapacity, or a Shards that is not a power of two,
// which are programming errors.
func NewMap(cfg MapConfig) *Map {
	capacity := cfg.Capacity
	switch {
	case capacity < 0 || capacity > MaxCapacity:
		panic(fmt.Sprintf("ticket: capacity %d is not within 0..%d", capacity, MaxCapacity))
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
	segSlots := min(ceilPow2(slotsPerLive*perShard), maxSegSlots)
	segs := (slotsPerLive*perShard + segSlots - 1) / segSlots
	maxSlots := uint64(segs * segSlots)

	m := &Map{
		seed:      maphash.MakeSeed(),
		shards:    make([]shard, shards),
		shardMask: uint64(shards - 1),
		localBits: uint(bits.Len64(maxSlots - 1)),
		segShift:  uint(bits.TrailingZeros(uint(segSlots))),
		maxSlots:  maxSlots,
		now:       cfg.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.key = newMintKey()
	for i := range m.shards {
		m.shards[i].segs = make([]atomic.Pointer[segment], segs)
		// Spread the remainder so that the limits sum to capacity exactly.
		m.shards[i].limit = int64(capacity / shards)
		if i < capacity%shards {
			m.shards[i].limit++
		}
	}
	m.arena.init(capacity, shards)
	return m
}

// ceilPow2 returns the least power of two ≥ n (1 for n ≤ 1).
func ceilPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// slotAt returns local slot i of s, or nil if its segment is not allocated.
func (m *Map) slotAt(s *shard, i uint64) *slot {
	seg := s.segs[i>>m.segShift].Load()
	if seg == nil {
		return nil
	}
	return &seg[i&(1<<m.segShift-1)]
}

// Issue stores c under a fresh ticket valid while now < now+ttl and returns
// the ticket. A ticket never outlives the session it was traded for: when
// c.SessionExpires is set and earlier, the ticket expires then. A ttl ≤ 0
// issues a ticket that never redeems. Issue copies c's strings into the
// Map's arena (the caller may change c.Channels afterwards). It fails with
// ErrFull when the Map holds its Capacity of live tickets or its arena
// budget of claims, and with the crypto/rand error if randomness fails.
// Safe for concurrent use; wait-free (bounded).
func (m *Map) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	r, err := New()
	if err != nil {
		return Ticket{}, err
	}
	return m.issue(c, now, ttl, &r)
}

// issue is Issue with the random bits given.
func (m *Map) issue(c Claims, now time.Time, ttl time.Duration, r *Ticket) (Ticket, error) {
	nowNano := now.UnixNano()
	expires := now.Add(ttl)
	if !c.SessionExpires.IsZero() && c.SessionExpires.Before(expires) {
		expires = c.SessionExpires
	}
	first := rand.Uint64() & m.shardMask
	for i := range uint64(len(m.shards)) {
		si := (first + i) & m.shardMask
		s := &m.shards[si]
		if !s.reserve() {
			// Expired tickets may be all that fills the shard: reclaim some,
			// once per call, which bounds the cost of a full Map.
			if i > 0 || m.sweepShard(s, nowNano, fullSweepBudget) == 0 || !s.reserve() {
				continue
			}
		}
		local, st, ok := m.take(s, nowNano)
		if !ok {
			s.issued.Add(-1) // give the reservation back
			continue
		}
		ref, ok := m.arena.put(&c, int(si))
		if !ok {
			m.slotAt(s, local).state.Store(freed(st))
			s.issued.Add(-1)
			return Ticket{}, ErrFull
		}
		idx := si<<m.localBits | local
		t := m.mint(idx, r)
		sl := m.slotAt(s, local)
		k0, k1 := ticketWords(&t)
		sl.k0.Store(k0)
		sl.k1.Store(k1)
		sl.exp.Store(expires.UnixNano())
		// Publishing makes the words above visible to whoever loads this
		// state: nobody can look for t before Issue returns it.
		sl.state.Store(st&^kindMask | kindLive | ref<<refShift)
		return t, nil
	}
	return Ticket{}, ErrFull
}

// take finds a free or expired slot of s and makes it busy. It returns the
// local slot and its busy state. It tries probes slots at the cursor (where
// freed slots are reused, keeping the table dense); then, while the shard
// has fewer than about 5 slots per 4 live tickets, it grows the shard by one
// slot, and otherwise (or when it cannot grow) tries fullProbes more, since
// at least a fifth of the slots are then free.
func (m *Map) take(s *shard, nowNano int64) (local, st uint64, ok bool) {
	try := func(n int) (uint64, uint64, bool) {
		top := s.grown(m.maxSlots)
		if top == 0 {
			return 0, 0, false
		}
		for range n {
			i := (s.cursor.Add(1) - 1) % top
			if st, ok := m.tryTake(s, i, nowNano); ok {
				return i, st, true
			}
		}
		return 0, 0, false
	}
	if local, st, ok = try(probes); ok {
		return local, st, ok
	}
	live := uint64(max(s.issued.Load()-s.redeemed.Load()-s.expired.Load(), 0))
	if tight := 4*s.grown(m.maxSlots) < 5*live+4*probes; !tight {
		if local, st, ok = try(fullProbes); ok {
			return local, st, ok
		}
	}
	if i := s.top.Add(1) - 1; i < m.maxSlots {
		segs := &s.segs[i>>m.segShift]
		if segs.Load() == nil {
			// Whoever loses this CAS drops its segment and uses the
			// winner's: one CAS, no waiting.
			segs.CompareAndSwap(nil, new(segment))
		}
		if st, ok := m.tryTake(s, i, nowNano); ok {
			return i, st, true
		}
	}
	return try(fullProbes)
}

// tryTake makes local slot i of s busy if it is free or holds a ticket
// expired at nowNano, and returns its busy state.
func (m *Map) tryTake(s *shard, i uint64, nowNano int64) (uint64, bool) {
	sl := m.slotAt(s, i)
	if sl == nil {
		return 0, false
	}
	st := sl.state.Load()
	switch kindOf(st) {
	case kindFree:
	case kindLive:
		if nowNano < sl.exp.Load() {
			return 0, false
		}
	default:
		return 0, false
	}
	busy := nextBusy(st)
	if !sl.state.CompareAndSwap(st, busy) {
		return 0, false // another issuer, a redeem or a sweeper got there first
	}
	if kindOf(st) == kindLive {
		// The CAS of st proves the expiry read belonged to this ticket.
		s.expired.Add(1)
		m.arena.release(refOf(st))
	}
	return busy, true
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

// Redeem parses text as a ticket and consumes it: of any number of concurrent
// calls with the same ticket, exactly one gets the claims, and only while now
// is before the ticket's expiry. Malformed, unknown, expired and used tickets
// all fail with ErrInvalid. The claims' strings live in the Map's arena,
// never written again: they stay valid for as long as the caller keeps
// them. Safe for concurrent use; wait-free; allocates nothing but the
// Channels slice (one allocation, only for claims that have channels).
func (m *Map) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		// Spread the count of malformed texts over shards like the rest.
		m.shards[maphash.Bytes(m.seed, text)&m.shardMask].rejected.Add(1)
		return Claims{}, ErrInvalid
	}
	idx := m.slotOf(&t)
	si, local := idx>>m.localBits, idx&(1<<m.localBits-1)
	if si > m.shardMask || local >= m.maxSlots {
		// No such slot: most guesses end here, reading nothing.
		m.shards[idx&m.shardMask].rejected.Add(1)
		return Claims{}, ErrInvalid
	}
	s := &m.shards[si]
	if sl := m.slotAt(s, local); sl != nil {
		st := sl.state.Load()
		k0, k1 := ticketWords(&t)
		if kindOf(st) == kindLive && sl.k0.Load() == k0 && sl.k1.Load() == k1 {
			exp := sl.exp.Load()
			// Removing it is the one step that decides who wins: the state
			// word carries a generation, so only one CAS from it succeeds.
			if sl.state.CompareAndSwap(st, freed(st)) {
				ref := refOf(st)
				if now.UnixNano() < exp {
					c := m.arena.claims(ref)
					m.arena.release(ref)
					s.redeemed.Add(1)
					return c, nil
				}
				m.arena.release(ref)
				s.expired.Add(1)
			}
		}
	}
	s.rejected.Add(1)
	return Claims{}, ErrInvalid
}

// Sweep reclaims expired tickets (expiry ≤ now) from up to budget slots,
// continuing where the previous Sweep stopped and walking the grown part of
// the table shard by shard, and returns how many it reclaimed. It never
// stops a shard: Issue and Redeem run on beside it. Safe for concurrent use;
// concurrent Sweeps take disjoint runs of slots.
func (m *Map) Sweep(now time.Time, budget int) int {
	total := m.slotCount()
	if budget <= 0 || total == 0 {
		return 0
	}
	nowNano := now.UnixNano()
	pos := (m.sweepNext.Add(uint64(budget)) - uint64(budget)) % total
	// Find the shard that holds position pos of the grown slots.
	si := 0
	for ; ; si++ {
		n := m.shards[si].grown(m.maxSlots)
		if pos < n {
			break
		}
		pos -= n
	}
	reclaimed := 0
	for range min(uint64(budget), total) {
		s := &m.shards[si]
		for pos >= s.grown(m.maxSlots) { // also skips shards not grown at all
			pos, si = 0, (si+1)&int(m.shardMask)
			s = &m.shards[si]
		}
		if m.reclaim(s, pos, nowNano) {
			reclaimed++
		}
		pos++
	}
	return reclaimed
}

// grown is the number of slots s has grown into.
func (s *shard) grown(maxSlots uint64) uint64 { return min(s.top.Load(), maxSlots) }

// slotCount is the number of slots the table has grown into: what one pass
// of Sweep visits.
func (m *Map) slotCount() uint64 {
	var n uint64
	for i := range m.shards {
		n += m.shards[i].grown(m.maxSlots)
	}
	return n
}

// sweepShard reclaims expired tickets from up to budget slots of s,
// continuing where its previous sweep stopped, and returns how many it
// reclaimed.
func (m *Map) sweepShard(s *shard, nowNano int64, budget int) int {
	top := s.grown(m.maxSlots)
	if top == 0 {
		return 0
	}
	pos := (s.sweepNext.Add(uint64(budget)) - uint64(budget)) % top
	reclaimed := 0
	for range min(uint64(budget), top) {
		if m.reclaim(s, pos, nowNano) {
			reclaimed++
		}
		if pos++; pos == top {
			pos = 0
		}
	}
	return reclaimed
}

// reclaim empties local slot i of s if it holds a ticket expired at nowNano.
func (m *Map) reclaim(s *shard, i uint64, nowNano int64) bool {
	sl := m.slotAt(s, i)
	if sl == nil {
		return false
	}
	st := sl.state.Load()
	if kindOf(st) != kindLive || nowNano < sl.exp.Load() || !sl.state.CompareAndSwap(st, freed(st)) {
		return false
	}
	m.arena.release(refOf(st))
	s.expired.Add(1)
	return true
}

// Run sweeps the grown table once every interval (every ≤ 0 means one
// second), in slices so that no single Sweep runs long, until ctx is done. It
// uses MapConfig.Now as the clock. An interval near the ticket TTL keeps
// expired tickets from lingering much longer than they lived. Run it on its
// own goroutine; it returns when ctx is done.
func (m *Map) Run(ctx context.Context, every time.Duration) {
	const slice = 4096
	if every <= 0 {
		every = time.Second
	}
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
		total := int(m.slotCount())
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

package ticket

// Benchmarks of Map beside the rivals it must beat, in the same run:
//
//	go test ./auth/ticket -run x -bench . -benchmem -cpu 1,2
//
// Every benchmark runs GOMAXPROCS goroutines (so -cpu 1 is serial), and each
// has one sub-benchmark per store: turnstile (Map), syncmap (sync.Map),
// rwmutex (a sharded map guarded by sync.RWMutex) and xsync
// (github.com/puzpuzpuz/xsync/v4 Map). Map runs twice: sized for the load and
// at the default capacity (see rivals). All stores parse the text the same way
// and check the expiry the same way; only the table differs.

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
)

// benchStore is a Store the benchmarks can also fill with known tickets, so
// that preparing a batch costs no crypto/rand.
type benchStore interface {
	Store
	// put stores c under t, or, for a Map (which makes its tickets from
	// the slot it picks), under a ticket made from t's random bits; it
	// returns the ticket stored.
	put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error)
}

var rivals = []struct {
	name string
	make func() benchStore
}{
	// Map's table is sized by its capacity, not its content: turnstile is
	// sized for the benchmark's load (2×batch), turnstile_cap1M is the
	// default -ticket-capacity holding the same tickets in a 16× larger table.
	{"turnstile", func() benchStore { return NewMap(MapConfig{Capacity: 2 * batch}) }},
	{"turnstile_cap1M", func() benchStore { return NewMap(MapConfig{}) }},
	// The map before the pointer-free table (oldmap_test.go), the same two ways.
	{"oldmap", func() benchStore { return newBaseMap(baseMapConfig{Capacity: 2 * batch}) }},
	{"oldmap_cap1M", func() benchStore { return newBaseMap(baseMapConfig{}) }},
	{"syncmap", func() benchStore { return new(syncMapStore) }},
	{"rwmutex", func() benchStore { return newRWMutexStore() }},
	{"xsync", func() benchStore { return &xsyncStore{m: xsync.NewMap[Ticket, rivalEntry]()} }},
}

// put issues a ticket made from t's bits, for benchmarks only.
func (m *Map) put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	return m.issue(c, now, ttl, &t)
}

// rivalEntry is what the rival stores keep per ticket.
type rivalEntry struct {
	claims  Claims
	expires int64
}

// syncMapStore is a Store over sync.Map.
type syncMapStore struct{ m sync.Map }

func (s *syncMapStore) put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	s.m.Store(t, &rivalEntry{claims: c, expires: now.Add(ttl).UnixNano()})
	return t, nil
}

func (s *syncMapStore) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	t, err := New()
	if err != nil {
		return Ticket{}, err
	}
	return s.put(t, c, now, ttl)
}

func (s *syncMapStore) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	v, ok := s.m.LoadAndDelete(t)
	if !ok {
		return Claims{}, ErrInvalid
	}
	e := v.(*rivalEntry)
	if now.UnixNano() >= e.expires {
		return Claims{}, ErrInvalid
	}
	return e.claims, nil
}

// rwMutexStore is a Store over Go maps sharded by ticket bytes, each behind
// a sync.RWMutex: a miss takes only the read lock.
type rwMutexStore struct {
	shards []rwMutexShard
	mask   uint64
}

type rwMutexShard struct {
	mu sync.RWMutex
	m  map[Ticket]rivalEntry
	_  [cacheLine]byte
}

func newRWMutexStore() *rwMutexStore {
	n := ceilPow2(4 * runtime.GOMAXPROCS(0)) // as many shards as Map
	s := &rwMutexStore{shards: make([]rwMutexShard, n), mask: uint64(n - 1)}
	for i := range s.shards {
		s.shards[i].m = make(map[Ticket]rivalEntry)
	}
	return s
}

func (s *rwMutexStore) shard(t *Ticket) *rwMutexShard {
	// Tickets are random, so their bytes are a fine shard index.
	return &s.shards[binary.LittleEndian.Uint64(t[:8])&s.mask]
}

func (s *rwMutexStore) put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	sh := s.shard(&t)
	sh.mu.Lock()
	sh.m[t] = rivalEntry{claims: c, expires: now.Add(ttl).UnixNano()}
	sh.mu.Unlock()
	return t, nil
}

func (s *rwMutexStore) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	t, err := New()
	if err != nil {
		return Ticket{}, err
	}
	return s.put(t, c, now, ttl)
}

func (s *rwMutexStore) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	sh := s.shard(&t)
	sh.mu.RLock()
	_, ok := sh.m[t]
	sh.mu.RUnlock()
	if !ok {
		return Claims{}, ErrInvalid
	}
	sh.mu.Lock()
	e, ok := sh.m[t]
	delete(sh.m, t)
	sh.mu.Unlock()
	if !ok || now.UnixNano() >= e.expires {
		return Claims{}, ErrInvalid
	}
	return e.claims, nil
}

// xsyncStore is a Store over xsync.Map.
type xsyncStore struct {
	m *xsync.Map[Ticket, rivalEntry]
}

func (s *xsyncStore) put(t Ticket, c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	s.m.Store(t, rivalEntry{claims: c, expires: now.Add(ttl).UnixNano()})
	return t, nil
}

func (s *xsyncStore) Issue(c Claims, now time.Time, ttl time.Duration) (Ticket, error) {
	t, err := New()
	if err != nil {
		return Ticket{}, err
	}
	return s.put(t, c, now, ttl)
}

func (s *xsyncStore) Redeem(text []byte, now time.Time) (Claims, error) {
	t, err := Parse(text)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	e, ok := s.m.LoadAndDelete(t)
	if !ok || now.UnixNano() >= e.expires {
		return Claims{}, ErrInvalid
	}
	return e.claims, nil
}

// The rival stores must be interchangeable with Map.
func TestRivalsBehaveLikeMap(t *testing.T) {
	for _, r := range rivals {
		s := r.make()
		tk, err := s.Issue(Claims{Subject: "maggie"}, t0, time.Minute)
		if err != nil {
			t.Fatalf("%s: Issue: %v", r.name, err)
		}
		if c, err := s.Redeem(text(tk), t0); err != nil || c.Subject != "maggie" {
			t.Fatalf("%s: Redeem = %+v, %v", r.name, c, err)
		}
		if _, err := s.Redeem(text(tk), t0); err == nil {
			t.Fatalf("%s: replay redeemed", r.name)
		}
		other, err := s.put(benchTickets(1)[0].ticket, Claims{}, t0, time.Second)
		if err != nil {
			t.Fatalf("%s: put: %v", r.name, err)
		}
		if _, err := s.Redeem(text(other), t0.Add(time.Second)); err == nil {
			t.Fatalf("%s: expired ticket redeemed", r.name)
		}
	}
}

// batch is how many tickets a benchmark holds at once: a busy server's live
// tickets (issue rate × TTL), small beside Map's default capacity.
const batch = 1 << 16

var benchClaims = Claims{Subject: "maggie", RemoteAddr: "127.0.0.1:40000"}

type benchTicket struct {
	ticket Ticket
	text   []byte
}

// benchTickets returns n distinct random tickets with their text forms.
func benchTickets(n int) []benchTicket {
	out := make([]benchTicket, n)
	texts := make([]byte, 0, n*TextLen)
	for i := range out {
		t, err := New()
		if err != nil {
			panic(err)
		}
		texts = t.AppendText(texts)
		out[i] = benchTicket{ticket: t, text: texts[len(texts)-TextLen:]}
	}
	return out
}

// reportCPU reports the process CPU time spent since start per operation,
// as cpu-ns/op: on a shared machine a steadier figure than ns/op, and it
// counts the garbage collector's work, which ns/op hides on idle cores.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// inBatches runs b.N operations in batches of at most batch: prepare(n) runs
// with the timer stopped, then GOMAXPROCS goroutines run op over [0, n)
// between them with the timer running, then finish(n) runs stopped again.
// cpu-ns/op counts only the timed parts.
func inBatches(b *testing.B, prepare func(n int), op func(i int), finish func(n int)) {
	procs := runtime.GOMAXPROCS(0)
	b.StopTimer()
	b.ResetTimer()
	var cpu time.Duration
	defer func() { reportCPU(b, cpu) }()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		prepare(n)
		var wg sync.WaitGroup
		start := processCPU()
		b.StartTimer()
		for p := range procs {
			lo, hi := n*p/procs, n*(p+1)/procs
			wg.Go(func() {
				for i := lo; i < hi; i++ {
					op(i)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu += processCPU() - start
		finish(n)
		done += n
	}
}

// BenchmarkIssue issues fresh tickets (crypto/rand included) into a store
// holding up to batch tickets.
func BenchmarkIssue(b *testing.B) {
	for _, r := range rivals {
		b.Run(r.name, func(b *testing.B) {
			s := r.make()
			issued := make([]Ticket, batch)
			buf := make([]byte, 0, TextLen)
			inBatches(b,
				func(int) {},
				func(i int) {
					t, err := s.Issue(benchClaims, t0, time.Minute)
					if err != nil {
						b.Error(err)
					}
					issued[i] = t
				},
				func(n int) {
					for _, t := range issued[:n] {
						buf = t.AppendText(buf[:0])
						if _, err := s.Redeem(buf, t0); err != nil {
							b.Fatal(err)
						}
					}
				})
		})
	}
}

// BenchmarkRedeem redeems valid tickets (hits) from a store holding batch.
func BenchmarkRedeem(b *testing.B) {
	tickets := benchTickets(batch)
	for _, r := range rivals {
		b.Run(r.name, func(b *testing.B) {
			s := r.make()
			// The old map's put, unlike Issue, cannot retry with another
			// ticket when a bucket is full, so a few tickets may be left out.
			held := make([]bool, batch)
			texts := make([]byte, batch*TextLen)
			inBatches(b,
				func(n int) {
					for i, t := range tickets[:n] {
						got, err := s.put(t.ticket, benchClaims, t0, time.Minute)
						held[i] = err == nil
						got.AppendText(texts[i*TextLen : i*TextLen])
					}
				},
				func(i int) {
					if _, err := s.Redeem(texts[i*TextLen:(i+1)*TextLen], t0); (err == nil) != held[i] {
						b.Errorf("Redeem of a ticket held=%v: %v", held[i], err)
					}
				},
				func(int) {})
		})
	}
}

// BenchmarkRedeemMiss redeems well-formed unknown tickets (what a client
// guessing tickets sends) against a store holding about batch tickets.
func BenchmarkRedeemMiss(b *testing.B) {
	held, unknown := benchTickets(batch), benchTickets(4096)
	for _, r := range rivals {
		b.Run(r.name, func(b *testing.B) {
			s := r.make()
			for _, t := range held {
				_, _ = s.put(t.ticket, benchClaims, t0, time.Minute) // see BenchmarkRedeem
			}
			b.ResetTimer()
			start := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, err := s.Redeem(unknown[i%len(unknown)].text, t0); err == nil {
						b.Error("unknown ticket redeemed")
					}
				}
			})
			reportCPU(b, processCPU()-start)
		})
	}
}

// BenchmarkMix is the server's steady state: every goroutine issues a ticket
// and redeems the one it issued depth operations before, so the store holds
// about depth×GOMAXPROCS tickets. One op is one Issue plus one Redeem.
func BenchmarkMix(b *testing.B) {
	const depth = 1024
	for _, r := range rivals {
		b.Run(r.name, func(b *testing.B) {
			s := r.make()
			start := processCPU()
			defer func() { reportCPU(b, processCPU()-start) }()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ring := make([]byte, depth*TextLen)
				for i := 0; pb.Next(); i++ {
					slot := ring[(i%depth)*TextLen:][:TextLen]
					if i >= depth {
						if _, err := s.Redeem(slot, t0); err != nil {
							b.Error(err)
						}
					}
					t, err := s.Issue(benchClaims, t0, time.Minute)
					if err != nil {
						b.Error(err)
					}
					t.AppendText(slot[:0])
				}
			})
		})
	}
}

package ticket

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the injected clock of the tests: Issue and Redeem take the time.
var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

var _ Store = (*Map)(nil)

func mustIssue(t testing.TB, m *Map, c Claims, now time.Time, ttl time.Duration) Ticket {
	t.Helper()
	tk, err := m.Issue(c, now, ttl)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tk
}

func text(tk Ticket) []byte { return tk.AppendText(nil) }

func TestIssueRedeem(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 64})
	want := Claims{Subject: "maggie", SessionExpires: t0.Add(time.Hour), Channels: []string{"news"}, RemoteAddr: "127.0.0.1:1", Origin: "https://example.com"}
	tk := mustIssue(t, m, want, t0, 30*time.Second)
	got, err := m.Redeem(text(tk), t0.Add(time.Second))
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if got.Subject != want.Subject || !got.SessionExpires.Equal(want.SessionExpires) || len(got.Channels) != 1 ||
		got.Channels[0] != "news" || got.RemoteAddr != want.RemoteAddr || got.Origin != want.Origin {
		t.Fatalf("Redeem claims = %+v; want %+v", got, want)
	}
}

func TestRedeemReplayFails(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 64})
	tk := mustIssue(t, m, Claims{Subject: "maggie"}, t0, time.Minute)
	if _, err := m.Redeem(text(tk), t0); err != nil {
		t.Fatalf("first Redeem: %v", err)
	}
	for i := range 3 {
		if c, err := m.Redeem(text(tk), t0); !errors.Is(err, ErrInvalid) || c.Subject != "" {
			t.Fatalf("replay %d: Redeem = %+v, %v; want empty claims and ErrInvalid", i, c, err)
		}
	}
	st := m.Stats()
	if st.Issued != 1 || st.Redeemed != 1 || st.Rejected != 3 || st.Live != 0 {
		t.Fatalf("Stats = %+v; want 1 issued, 1 redeemed, 3 rejected, 0 live", st)
	}
}

func TestRedeemExpiry(t *testing.T) {
	const ttl = 30 * time.Second
	cases := []struct {
		name  string
		after time.Duration
		ok    bool
	}{
		{"at issue", 0, true},
		{"just before expiry", ttl - time.Nanosecond, true},
		{"at expiry", ttl, false},
		{"long after", time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMap(MapConfig{Capacity: 8})
			tk := mustIssue(t, m, Claims{Subject: "maggie"}, t0, ttl)
			_, err := m.Redeem(text(tk), t0.Add(tc.after))
			if tc.ok != (err == nil) {
				t.Fatalf("Redeem %v after issue: err = %v; want ok=%v", tc.after, err, tc.ok)
			}
			if !tc.ok {
				if _, err := m.Redeem(text(tk), t0); err == nil {
					t.Fatal("an expired ticket redeemed later with an earlier clock")
				}
				if st := m.Stats(); st.Expired != 1 || st.Live != 0 {
					t.Fatalf("Stats = %+v; want the expired ticket reclaimed", st)
				}
			}
		})
	}
}

func TestRedeemMalformedAndUnknown(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 64})
	tk := mustIssue(t, m, Claims{Subject: "maggie"}, t0, time.Minute)
	valid := text(tk)
	other, _ := New()
	bad := [][]byte{
		nil,
		[]byte(""),
		valid[:TextLen-1],
		append(append([]byte{}, valid...), 'A'),
		append(append([]byte{}, valid...), '=', '='),
		text(other), // well formed, never issued
	}
	for _, tc := range parseCases {
		if tc.want == nil {
			bad = append(bad, []byte(tc.text))
		}
	}
	// The same ticket with its last character made non-canonical.
	flipped := append([]byte{}, valid...)
	flipped[TextLen-1] = alphabet[decodeTable[flipped[TextLen-1]]|1]
	bad = append(bad, flipped)
	for _, b := range bad {
		if _, err := m.Redeem(b, t0); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Redeem(%q) err = %v; want ErrInvalid", b, err)
		}
	}
	if st := m.Stats(); st.Rejected != uint64(len(bad)) {
		t.Fatalf("Rejected = %d; want %d", st.Rejected, len(bad))
	}
	if _, err := m.Redeem(valid, t0); err != nil {
		t.Fatalf("the real ticket after %d bad ones: %v", len(bad), err)
	}
}

func TestCapacityFullAndRecovery(t *testing.T) {
	const capacity = 100
	m := NewMap(MapConfig{Capacity: capacity, Shards: 1})
	var issued []Ticket
	for range capacity {
		issued = append(issued, mustIssue(t, m, Claims{Subject: "u"}, t0, time.Minute))
	}
	if _, err := m.Issue(Claims{}, t0, time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Issue past capacity: err = %v; want ErrFull", err)
	}
	if st := m.Stats(); st.Live != capacity {
		t.Fatalf("Live = %d; want %d", st.Live, capacity)
	}

	// A redeem frees exactly one place.
	if _, err := m.Redeem(text(issued[0]), t0); err != nil {
		t.Fatal(err)
	}
	mustIssue(t, m, Claims{}, t0, time.Minute)
	if _, err := m.Issue(Claims{}, t0, time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Issue after one redeem and one issue: err = %v; want ErrFull", err)
	}

	// Once everything has expired, Issue reclaims room by itself, without
	// Sweep or Run.
	later := t0.Add(2 * time.Minute)
	for i := range capacity {
		if _, err := m.Issue(Claims{}, later, time.Minute); err != nil {
			t.Fatalf("Issue %d after expiry: %v", i, err)
		}
	}
	if _, err := m.Issue(Claims{}, later, time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Issue past capacity again: err = %v; want ErrFull", err)
	}
	if _, err := m.Redeem(text(issued[1]), later); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an old ticket after its place was reused: err = %v; want ErrInvalid", err)
	}
}

func TestCapacityIsExactAcrossShards(t *testing.T) {
	for _, tc := range []struct{ capacity, shards int }{{1, 4}, {3, 2}, {10, 4}, {1000, 16}, {1001, 8}} {
		m := NewMap(MapConfig{Capacity: tc.capacity, Shards: tc.shards})
		if got := m.Capacity(); got != tc.capacity {
			t.Fatalf("NewMap(capacity %d, shards %d).Capacity() = %d", tc.capacity, tc.shards, got)
		}
	}
}

// TestFillReachesCapacity measures the real guarantee documented on Map:
// bounded probing and per-shard limits refuse only very near Capacity.
func TestFillReachesCapacity(t *testing.T) {
	for _, tc := range []struct {
		capacity, shards int
		minFill          float64
	}{
		{1 << 12, 1, 0.999},
		{1 << 14, 16, 0.98},
		{1 << 16, 64, 0.98},
	} {
		m := NewMap(MapConfig{Capacity: tc.capacity, Shards: tc.shards})
		n := 0
		for ; n < tc.capacity; n++ {
			if _, err := m.Issue(Claims{}, t0, time.Minute); err != nil {
				break
			}
		}
		fill := float64(n) / float64(tc.capacity)
		t.Logf("capacity %d, %d shards: first ErrFull after %d issues (%.4f)", tc.capacity, tc.shards, n, fill)
		if fill < tc.minFill {
			t.Fatalf("capacity %d, %d shards: ErrFull after %d issues (%.4f of capacity); want ≥ %.3f",
				tc.capacity, tc.shards, n, fill, tc.minFill)
		}
		if st := m.Stats(); st.Live != int64(n) || st.Issued != uint64(n) {
			t.Fatalf("Stats = %+v after %d issues", st, n)
		}
	}
}

func TestSweepReclaimsExpired(t *testing.T) {
	const n = 200
	m := NewMap(MapConfig{Capacity: 256, Shards: 4})
	long := make([]Ticket, 0, n/2)
	for i := range n {
		ttl := time.Second
		if i%2 == 0 {
			ttl = time.Hour
		}
		tk := mustIssue(t, m, Claims{}, t0, ttl)
		if i%2 == 0 {
			long = append(long, tk)
		}
	}
	total := int(m.slotCount())
	if got := m.Sweep(t0.Add(time.Hour), 0); got != 0 {
		t.Fatalf("Sweep with budget 0 reclaimed %d", got)
	}
	if got := m.Sweep(t0, total); got != 0 {
		t.Fatalf("Sweep before any expiry reclaimed %d", got)
	}
	// Small budgets, called repeatedly, cover the whole table exactly once.
	later := t0.Add(time.Minute)
	reclaimed := 0
	for done := 0; done < total; done += 7 {
		reclaimed += m.Sweep(later, min(7, total-done))
	}
	if reclaimed != n/2 {
		t.Fatalf("Sweep reclaimed %d; want %d", reclaimed, n/2)
	}
	if st := m.Stats(); st.Live != n/2 || st.Expired != n/2 {
		t.Fatalf("Stats = %+v; want %d live and %d expired", st, n/2, n/2)
	}
	for _, tk := range long {
		if _, err := m.Redeem(text(tk), later); err != nil {
			t.Fatalf("a live ticket did not survive Sweep: %v", err)
		}
	}
}

func TestRunSweepsInBackground(t *testing.T) {
	// every 0 falls back to one second instead of panicking in NewTicker.
	for _, every := range []time.Duration{time.Millisecond, 0} {
		var clock atomic.Int64
		clock.Store(t0.UnixNano())
		m := NewMap(MapConfig{Capacity: 128, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
		for range 100 {
			mustIssue(t, m, Claims{}, t0, time.Second)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			m.Run(ctx, every)
			close(done)
		}()
		clock.Store(t0.Add(time.Minute).UnixNano())
		deadline := time.Now().Add(10 * time.Second)
		for m.Stats().Live != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("Run(every %v) did not reclaim expired tickets: %+v", every, m.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Run(every %v) did not return after ctx was cancelled", every)
		}
	}
}

// TestRedeemExactlyOnce is the contract's core: of many goroutines redeeming
// one ticket at the same moment, exactly one gets the claims. Each round, the
// racers spin on a start flag and then walk the same tickets in the same
// order, so that several of them reach each ticket at once; a Redeem that
// checked and then removed in two steps fails this within a few rounds.
func TestRedeemExactlyOnce(t *testing.T) {
	rounds, perRound := 200, 64
	if testing.Short() {
		rounds = 50
	}
	racers := max(8, 2*runtime.GOMAXPROCS(0))
	m := NewMap(MapConfig{Capacity: 1024})
	texts := make([][]byte, perRound)
	winners := make([]atomic.Int32, perRound)
	for round := range rounds {
		for i := range texts {
			texts[i] = text(mustIssue(t, m, Claims{Subject: "maggie"}, t0, time.Minute))
			winners[i].Store(0)
		}
		var start atomic.Bool
		var ready, wg sync.WaitGroup
		ready.Add(racers)
		for range racers {
			wg.Go(func() {
				ready.Done()
				for !start.Load() {
					runtime.Gosched()
				}
				for i, b := range texts {
					if c, err := m.Redeem(b, t0); err == nil {
						if c.Subject != "maggie" {
							t.Errorf("winner got claims %+v", c)
						}
						winners[i].Add(1)
					}
				}
			})
		}
		ready.Wait()
		start.Store(true)
		wg.Wait()
		for i := range winners {
			if w := winners[i].Load(); w != 1 {
				t.Fatalf("round %d, ticket %d: %d of %d goroutines redeemed it; want exactly 1", round, i, w, racers)
			}
		}
	}
	if st := m.Stats(); st.Redeemed != uint64(rounds*perRound) || st.Live != 0 {
		t.Fatalf("Stats = %+v; want %d redeemed, 0 live", st, rounds*perRound)
	}
}

// TestConcurrentIssueRedeemSweep mixes every operation on a small, crowded
// map: each ticket issued is redeemed at most once and the counters add up.
func TestConcurrentIssueRedeemSweep(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 256, Shards: 4})
	workers, perWorker := 2*runtime.GOMAXPROCS(0), 2000
	if testing.Short() {
		perWorker = 500
	}
	var redeemed, full atomic.Int64
	stopSweep := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() {
		for now := t0; ; now = now.Add(time.Millisecond) {
			select {
			case <-stopSweep:
				return
			default:
				m.Sweep(now, 64)
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			now := t0
			for i := range perWorker {
				now = now.Add(time.Microsecond)
				tk, err := m.Issue(Claims{Subject: "u"}, now, time.Duration(1+i%3)*time.Millisecond)
				if errors.Is(err, ErrFull) {
					full.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%4 == w%4 {
					continue // leave some to expire
				}
				if _, err := m.Redeem(text(tk), now); err == nil {
					redeemed.Add(1)
					if _, err := m.Redeem(text(tk), now); err == nil {
						t.Error("a ticket redeemed twice")
					}
				}
			}
		})
	}
	wg.Wait()
	close(stopSweep)
	sweeper.Wait()
	st := m.Stats()
	t.Logf("stats %+v, %d ErrFull", st, full.Load())
	if st.Redeemed != uint64(redeemed.Load()) {
		t.Fatalf("Stats.Redeemed = %d; callers saw %d", st.Redeemed, redeemed.Load())
	}
	if st.Live != int64(st.Issued)-int64(st.Redeemed)-int64(st.Expired) || st.Live < 0 || st.Live > 256 {
		t.Fatalf("inconsistent stats %+v", st)
	}
	// Everything left expires; a final full sweep empties the map.
	m.Sweep(t0.Add(time.Hour), int(m.slotCount()))
	if st := m.Stats(); st.Live != 0 {
		t.Fatalf("after a full sweep: %+v; want 0 live", st)
	}
}

func TestRedeemDoesNotAllocate(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 4096})
	const n = 100
	texts := make([][]byte, n+1)
	for i := range texts {
		// Every field set but Channels: the arena decodes strings and the
		// session expiry without allocating.
		texts[i] = text(mustIssue(t, m, Claims{Subject: "maggie", SessionExpires: t0.Add(time.Hour),
			RemoteAddr: "127.0.0.1:1", Origin: "https://example.com"}, t0, time.Minute))
	}
	unknown, _ := New()
	miss := text(unknown)
	malformed := []byte("not a ticket")
	i := 0
	hit := testing.AllocsPerRun(n, func() {
		// AllocsPerRun calls once more to warm up: n+1 tickets.
		if _, err := m.Redeem(texts[i], t0); err != nil {
			t.Fatal(err)
		}
		i++
	})
	missAllocs := testing.AllocsPerRun(n, func() {
		if _, err := m.Redeem(miss, t0); err == nil {
			t.Fatal("unknown ticket redeemed")
		}
		if _, err := m.Redeem(malformed, t0); err == nil {
			t.Fatal("malformed ticket redeemed")
		}
	})
	withChannels := make([][]byte, n+1)
	for i := range withChannels {
		withChannels[i] = text(mustIssue(t, m, Claims{Subject: "maggie", Channels: []string{"news", "chat:*"}}, t0, time.Minute))
	}
	j := 0
	chanAllocs := testing.AllocsPerRun(n, func() {
		c, err := m.Redeem(withChannels[j], t0)
		if err != nil || len(c.Channels) != 2 || c.Channels[1] != "chat:*" {
			t.Fatalf("redeem with channels: %v %q", err, c.Channels)
		}
		j++
	})
	if chanAllocs != 1 {
		t.Fatalf("Redeem with channels allocs %v; want 1 (the Channels slice)", chanAllocs)
	}
	if hit != 0 || missAllocs != 0 {
		t.Fatalf("Redeem allocs: hit %v, miss %v; want 0 and 0", hit, missAllocs)
	}
}

func TestNewMapConfig(t *testing.T) {
	m := NewMap(MapConfig{})
	if m.Capacity() != DefaultCapacity {
		t.Fatalf("zero config: Capacity() = %d; want %d", m.Capacity(), DefaultCapacity)
	}
	if n := len(m.shards); n&(n-1) != 0 || n < runtime.GOMAXPROCS(0) {
		t.Fatalf("zero config: %d shards; want a power of two ≥ GOMAXPROCS", n)
	}
	// The table may grow to slotsPerLive slots per ticket, but starts empty.
	if slots := uint64(len(m.shards)) * m.maxSlots; slots < slotsPerLive*DefaultCapacity {
		t.Fatalf("zero config: room for %d slots for capacity %d", slots, DefaultCapacity)
	}
	if grown := m.slotCount(); grown != 0 {
		t.Fatalf("zero config: %d slots allocated before any Issue; want 0", grown)
	}
	for _, bad := range []MapConfig{{Capacity: -1}, {Capacity: MaxCapacity + 1}, {Shards: 3}, {Shards: -2}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewMap(%+v) did not panic", bad)
				}
			}()
			NewMap(bad)
		}()
	}
}

func TestTicketNeverOutlivesSession(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 8})
	session := Claims{Subject: "maggie", SessionExpires: t0.Add(5 * time.Second)}
	tk := mustIssue(t, m, session, t0, 30*time.Second)
	if _, err := m.Redeem(text(tk), t0.Add(5*time.Second)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Redeem at session expiry, before ticket TTL: err = %v; want ErrInvalid", err)
	}
	tk = mustIssue(t, m, session, t0, 30*time.Second)
	if _, err := m.Redeem(text(tk), t0.Add(4*time.Second)); err != nil {
		t.Fatalf("Redeem before session expiry: %v", err)
	}
	// A session that outlives the TTL leaves the TTL in charge.
	long := Claims{Subject: "maggie", SessionExpires: t0.Add(time.Hour)}
	tk = mustIssue(t, m, long, t0, 30*time.Second)
	if _, err := m.Redeem(text(tk), t0.Add(30*time.Second)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Redeem at TTL with a long session: err = %v; want ErrInvalid", err)
	}
}

// FuzzRedeem: whatever bytes a client sends, only the issued ticket's text
// redeems.
func FuzzRedeem(f *testing.F) {
	m := NewMap(MapConfig{Capacity: 64})
	issued := text(mustIssue(f, m, Claims{Subject: "maggie"}, t0, time.Minute))
	f.Add(issued)
	for _, tc := range parseCases {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := m.Redeem(b, t0); err == nil && !bytes.Equal(b, issued) {
			t.Fatalf("Redeem(%q) succeeded; only %q was issued", b, issued)
		}
	})
}

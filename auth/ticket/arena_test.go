package ticket

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sameClaims reports how got differs from want ("" when it does not),
// telling a nil Channels from an empty one.
func sameClaims(got, want Claims) string {
	switch {
	case got.Subject != want.Subject:
		return fmt.Sprintf("Subject %q, want %q", got.Subject, want.Subject)
	case got.RemoteAddr != want.RemoteAddr:
		return fmt.Sprintf("RemoteAddr %q, want %q", got.RemoteAddr, want.RemoteAddr)
	case got.Origin != want.Origin:
		return fmt.Sprintf("Origin %q, want %q", got.Origin, want.Origin)
	case got.SessionExpires.IsZero() != want.SessionExpires.IsZero() || !got.SessionExpires.Equal(want.SessionExpires):
		return fmt.Sprintf("SessionExpires %v, want %v", got.SessionExpires, want.SessionExpires)
	case (got.Channels == nil) != (want.Channels == nil) || len(got.Channels) != len(want.Channels):
		return fmt.Sprintf("Channels %q (nil %v), want %q (nil %v)", got.Channels, got.Channels == nil, want.Channels, want.Channels == nil)
	}
	for i := range want.Channels {
		if got.Channels[i] != want.Channels[i] {
			return fmt.Sprintf("Channels[%d] %q, want %q", i, got.Channels[i], want.Channels[i])
		}
	}
	return ""
}

// Every field of the claims comes back as issued, whatever its size: the
// arena's encoding loses nothing (nil and empty Channels, the zero time,
// nanoseconds, a record larger than a chunk).
func TestClaimsRoundTrip(t *testing.T) {
	many := make([]string, 2000) // 2000 × (16 + ~12) bytes: its own chunk
	for i := range many {
		many[i] = fmt.Sprintf("chat:room-%d", i)
	}
	cases := []Claims{
		{},
		{Subject: "maggie"},
		{Subject: "maggie", SessionExpires: t0.Add(time.Hour + 123456789), Channels: []string{"news", "", "chat:*"},
			RemoteAddr: "[::1]:54321", Origin: "https://example.com"},
		{Subject: "zoë ☃", Channels: []string{}},
		{Subject: strings.Repeat("u", 5000), Origin: strings.Repeat("o", 3000)},
		{Subject: "big", Channels: many},
		{Subject: strings.Repeat("x", chunkSize)}, // exactly past a chunk
	}
	m := NewMap(MapConfig{Capacity: 1024})
	for i, want := range cases {
		tk := mustIssue(t, m, want, t0, time.Minute)
		got, err := m.Redeem(text(tk), t0)
		if err != nil {
			t.Fatalf("case %d: Redeem: %v", i, err)
		}
		if d := sameClaims(got, want); d != "" {
			t.Fatalf("case %d: %s", i, d)
		}
	}
}

// Issue copies the claims: changing the caller's Channels afterwards does
// not change what Redeem returns.
func TestIssueCopiesClaims(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 8})
	ch := []string{"news"}
	tk := mustIssue(t, m, Claims{Subject: "maggie", Channels: ch}, t0, time.Minute)
	ch[0] = "changed"
	got, err := m.Redeem(text(tk), t0)
	if err != nil || len(got.Channels) != 1 || got.Channels[0] != "news" {
		t.Fatalf("Redeem = %+v, %v; want Channels [news]", got, err)
	}
}

// Redeemed claims point into the arena; they must stay intact while their
// holder keeps them, however much the Map reuses its slots and drops its
// chunks afterwards, and the arena must give its chunks back once their
// tickets are gone.
func TestRedeemedClaimsSurviveReuse(t *testing.T) {
	const kept, churn = 3000, 60000
	m := NewMap(MapConfig{Capacity: 4096, Shards: 4})
	claimsOf := func(i int) Claims {
		return Claims{Subject: fmt.Sprintf("user-%d", i), Channels: []string{fmt.Sprintf("room:%d", i), "news"},
			RemoteAddr: fmt.Sprintf("10.0.%d.%d:443", i/256, i%256)}
	}
	held := make([]Claims, kept)
	for i := range held {
		tk := mustIssue(t, m, claimsOf(i), t0, time.Minute)
		c, err := m.Redeem(text(tk), t0)
		if err != nil {
			t.Fatal(err)
		}
		held[i] = c
	}
	// Churn: other claims through the same slots and fresh chunks.
	for i := range churn {
		tk := mustIssue(t, m, Claims{Subject: strings.Repeat("z", i%40), Origin: "https://other.example"}, t0, time.Minute)
		if _, err := m.Redeem(text(tk), t0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	for i, c := range held {
		if d := sameClaims(c, claimsOf(i)); d != "" {
			t.Fatalf("claims %d changed after reuse: %s", i, d)
		}
	}
	// Nothing is live: only the lanes' current chunks remain.
	if got, most := m.arena.bytes.Load(), int64(len(m.arena.lanes))*chunkSize; got > most {
		t.Fatalf("arena holds %d bytes with no live ticket; want at most the %d of the lanes' chunks", got, most)
	}
	if st := m.Stats(); st.Live != 0 || st.Redeemed != kept+churn {
		t.Fatalf("Stats = %+v", st)
	}
}

// Past its arena budget the Map answers ErrFull, and recovers once tickets
// go.
func TestArenaBudgetIsErrFull(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 16, Shards: 1})
	huge := Claims{Subject: strings.Repeat("h", int(m.arena.maxBytes)/2)}
	a := mustIssue(t, m, huge, t0, time.Minute)
	if _, err := m.Issue(huge, t0, time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Issue past the arena budget: err = %v; want ErrFull", err)
	}
	if st := m.Stats(); st.Live != 1 {
		t.Fatalf("a refused Issue left a trace: %+v", st)
	}
	if _, err := m.Redeem(text(a), t0); err != nil {
		t.Fatal(err)
	}
	b := mustIssue(t, m, huge, t0, time.Minute)
	if c, err := m.Redeem(text(b), t0); err != nil || c.Subject != huge.Subject {
		t.Fatalf("Redeem after the budget came back: %v", err)
	}
}

// The table grows with the live count, not the capacity, and reuses freed
// slots rather than growing further.
func TestTableGrowsWithLiveCount(t *testing.T) {
	const live = 10000
	m := NewMap(MapConfig{}) // DefaultCapacity
	texts := make([][]byte, live)
	for i := range texts {
		texts[i] = text(mustIssue(t, m, benchClaims, t0, time.Minute))
	}
	grown := m.slotCount()
	t.Logf("%d live tickets in a %d-capacity Map: %d slots grown", live, m.Capacity(), grown)
	if grown > live+live/8 {
		t.Fatalf("%d slots grown for %d live tickets; want at most %d", grown, live, live+live/8)
	}
	// Replace half of them, twice: freed slots are found again.
	for round := range 2 {
		for i := round; i < live; i += 2 {
			if _, err := m.Redeem(texts[i], t0); err != nil {
				t.Fatal(err)
			}
			texts[i] = text(mustIssue(t, m, benchClaims, t0, time.Minute))
		}
	}
	after := m.slotCount()
	t.Logf("after replacing every ticket: %d slots grown", after)
	// Growth stops near 5 slots per 4 live tickets in each shard (the
	// shards' live counts differ a little): well below 3 per 2.
	if after > live+live/2 {
		t.Fatalf("%d slots after replacing tickets (was %d): freed slots are not reused", after, grown)
	}
	segs := 0
	for i := range m.shards {
		for j := range m.shards[i].segs {
			if m.shards[i].segs[j].Load() != nil {
				segs++
			}
		}
	}
	if most := int(after)/maxSegSlots + len(m.shards); segs > most {
		t.Fatalf("%d segments allocated for %d slots; want at most %d", segs, after, most)
	}
}

// A stale ticket never redeems the ticket that took its slot after it, and
// a ticket forged for a live slot (right slot, wrong random bits) is refused
// without spending the real one.
func TestSlotReuseAndForgery(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 1, Shards: 1})
	old := mustIssue(t, m, Claims{Subject: "first"}, t0, time.Minute)
	if _, err := m.Redeem(text(old), t0); err != nil {
		t.Fatal(err)
	}
	cur := mustIssue(t, m, Claims{Subject: "second"}, t0, time.Minute)
	var r Ticket
	r[0] = 1
	forged := m.mint(m.slotOf(&cur), &r)
	for _, bad := range []Ticket{old, forged} {
		if _, err := m.Redeem(text(bad), t0); !errors.Is(err, ErrInvalid) {
			t.Fatalf("stale or forged ticket: err = %v; want ErrInvalid", err)
		}
	}
	if c, err := m.Redeem(text(cur), t0); err != nil || c.Subject != "second" {
		t.Fatalf("the live ticket after a stale and a forged one: %+v, %v", c, err)
	}
}

// mint and slotOf are inverse, and the slot number does not show in the
// ticket: flipping one bit of the slot number changes about half the bits.
func TestMintHidesSlot(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 1024})
	r, _ := New()
	total := 0
	for idx := range uint64(256) {
		a, b := m.mint(idx, &r), m.mint(idx^1, &r)
		if got := m.slotOf(&a); got != idx {
			t.Fatalf("slotOf(mint(%d)) = %d", idx, got)
		}
		for i := range a {
			total += popcount(a[i] ^ b[i])
		}
	}
	if avg := float64(total) / 256; avg < 48 || avg > 80 {
		t.Fatalf("neighbouring slots' tickets differ in %.1f of 128 bits on average; want about 64", avg)
	}
}

func popcount(b byte) (n int) {
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// TestRedeemExactlyOnceWhileSlotsTurnOver races many goroutines on the same
// tickets while the Map is so small that every round reuses the previous
// round's slots: of each live ticket exactly one racer wins, and replays of
// the previous round's tickets (whose slots now hold the new ones) never
// win. The generation in the state word is what this guards.
func TestRedeemExactlyOnceWhileSlotsTurnOver(t *testing.T) {
	const perRound = 32
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	racers := max(8, 2*runtime.GOMAXPROCS(0))
	m := NewMap(MapConfig{Capacity: perRound, Shards: 1})
	var prev, cur [][]byte
	winners := make([]atomic.Int32, perRound)
	var staleWins atomic.Int32
	for round := range rounds {
		prev, cur = cur, make([][]byte, perRound)
		for i := range cur {
			cur[i] = text(mustIssue(t, m, Claims{Subject: "maggie"}, t0, time.Minute))
			winners[i].Store(0)
		}
		var start atomic.Bool
		var ready, wg sync.WaitGroup
		ready.Add(racers)
		for g := range racers {
			wg.Go(func() {
				ready.Done()
				for !start.Load() {
					runtime.Gosched()
				}
				for i := range cur {
					if g%2 == 0 && prev != nil {
						if _, err := m.Redeem(prev[i], t0); err == nil {
							staleWins.Add(1)
						}
					}
					if c, err := m.Redeem(cur[i], t0); err == nil {
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
		if n := staleWins.Load(); n != 0 {
			t.Fatalf("round %d: %d replays of used tickets redeemed", round, n)
		}
	}
	if st := m.Stats(); st.Redeemed != uint64(rounds*perRound) || st.Live != 0 {
		t.Fatalf("Stats = %+v; want %d redeemed, 0 live", st, rounds*perRound)
	}
}

// TestConcurrentClaimsStayTheirOwn: many issuers and redeemers share lanes,
// chunks and slots, with a sweeper reclaiming beside them; every redeemed
// ticket returns exactly the claims it was issued with (two issuers never
// write over each other's record, a reclaimed record is never handed out).
func TestConcurrentClaimsStayTheirOwn(t *testing.T) {
	m := NewMap(MapConfig{Capacity: 512, Shards: 4})
	workers, perWorker := 2*runtime.GOMAXPROCS(0)+2, 3000
	if testing.Short() {
		perWorker = 800
	}
	stop := make(chan struct{})
	var sweeper, wg sync.WaitGroup
	sweeper.Go(func() {
		for now := t0; ; now = now.Add(time.Millisecond) {
			select {
			case <-stop:
				return
			default:
				m.Sweep(now, 32)
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				want := Claims{Subject: fmt.Sprintf("w%d-%d", w, i), Channels: []string{fmt.Sprintf("c%d", i), strings.Repeat("x", i%50)},
					Origin: strings.Repeat("o", (w+i)%30)}
				// Some tickets expire at once, for the sweeper and Issue to
				// reclaim; the rest are redeemed.
				ttl := time.Hour
				if i%5 == 0 {
					ttl = -time.Second
				}
				tk, err := m.Issue(want, t0, ttl)
				if errors.Is(err, ErrFull) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					continue // left for the sweeper or a later Issue
				}
				got, err := m.Redeem(text(tk), t0)
				if ttl < 0 {
					if err == nil {
						t.Error("an expired ticket redeemed")
					}
					continue
				}
				if err != nil {
					t.Errorf("Redeem of a fresh ticket: %v", err)
					return
				}
				if d := sameClaims(got, want); d != "" {
					t.Errorf("worker %d ticket %d: %s", w, i, d)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sweeper.Wait()
	m.Sweep(t0.Add(2*time.Hour), int(m.slotCount()))
	if st := m.Stats(); st.Live != 0 {
		t.Fatalf("after a final sweep: %+v; want 0 live", st)
	}
	if got, most := m.arena.bytes.Load(), int64(len(m.arena.lanes))*chunkSize; got > most {
		t.Fatalf("arena holds %d bytes with nothing live; want at most %d", got, most)
	}
}

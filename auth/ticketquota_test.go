package auth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

func TestTicketQuotaLimitsLiveTickets(t *testing.T) {
	const ttl = 28 * time.Second // 4 s slots
	q := newTicketQuota(10, ttl, 1024)
	now := testNow
	for i := range 10 {
		if w := q.take("maggie", now.Add(time.Duration(i)*time.Second)); w != 0 {
			t.Fatalf("ticket %d refused (%v) within the quota", i, w)
		}
	}
	now = now.Add(9 * time.Second)
	w := q.take("maggie", now)
	if w <= 0 {
		t.Fatal("11th ticket within the TTL allowed")
	}
	// The first tickets were issued at testNow: their slot frees between one
	// TTL and 8/7 of it after them.
	if free := now.Add(w).Sub(testNow); free < ttl || free > ttl*8/7 {
		t.Fatalf("Retry-After %v frees a slot %v after the first ticket, want within [%v, %v]", w, free, ttl, ttl*8/7)
	}
	if q.take("maggie", now.Add(w-time.Nanosecond)) == 0 {
		t.Fatal("a ticket allowed before Retry-After")
	}
	if q.take("maggie", now.Add(w)) != 0 {
		t.Fatal("no ticket at Retry-After")
	}
	// Other users have their own quota.
	if q.take("bob", now) != 0 {
		t.Fatal("another user refused")
	}
	// After a whole TTL and a slot, everything is back.
	later := now.Add(w + ttl + ttl/7) // past the ticket issued at Retry-After too
	for i := range 10 {
		if w := q.take("maggie", later); w != 0 {
			t.Fatalf("ticket %d refused %v after the TTL: %v", i, later.Sub(now), w)
		}
	}
}

// Whatever the timing, no window of one TTL ever holds more than the quota.
func TestTicketQuotaNeverExceededInAnyWindow(t *testing.T) {
	const ttl, limit = 7 * time.Second, 5
	q := newTicketQuota(limit, ttl, 1024)
	var issued []time.Time
	for ms := 0; ms < 60_000; ms += 37 {
		at := testNow.Add(time.Duration(ms) * time.Millisecond)
		if q.take("u", at) == 0 {
			issued = append(issued, at)
		}
	}
	for i := range issued {
		n := 0
		for j := i; j < len(issued) && issued[j].Sub(issued[i]) < ttl; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d tickets within %v from %v, quota %d", n, ttl, issued[i].Sub(testNow), limit)
		}
	}
	// And it is not stingy: at least limit per 8/7 TTL over the minute.
	if min := limit * int(time.Minute/(ttl*8/7)); len(issued) < min {
		t.Fatalf("%d tickets in a minute, want at least %d", len(issued), min)
	}
}

func TestTicketQuotaRefund(t *testing.T) {
	q := newTicketQuota(2, time.Minute, 1024)
	q.take("u", testNow)
	q.take("u", testNow)
	q.refund("u")
	if q.take("u", testNow) != 0 {
		t.Fatal("a refunded ticket still counts")
	}
	if q.take("u", testNow) == 0 {
		t.Fatal("quota exceeded after a refund")
	}
}

func TestTicketQuotaConcurrent(t *testing.T) {
	q := newTicketQuota(50, time.Minute, 1024)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q.take("u", testNow) == 0 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("%d of 200 parallel tickets allowed, quota 50", ok.Load())
	}
}

func TestTicketQuotaMemoryBounded(t *testing.T) {
	const maxEntries = 256
	q := newTicketQuota(3, time.Minute, maxEntries)
	for i := range 20000 {
		q.take("user-"+strconv.Itoa(i), testNow.Add(time.Duration(i)*time.Millisecond))
	}
	if n := q.len(); n > maxEntries {
		t.Fatalf("%d users held, cap %d", n, maxEntries)
	}
}

func TestTicketQuotaDisabled(t *testing.T) {
	q := newTicketQuota(0, time.Minute, 16)
	for range 1000 {
		if q.take("u", testNow) != 0 {
			t.Fatal("no quota refused a ticket")
		}
	}
}

// /ws_ticket answers 429 with Retry-After and a clear error past the quota,
// for that user only, and a store failure gives the slot back.
func TestTicketHandlerQuota(t *testing.T) {
	f := newFixture(t, func(c *HandlerConfig) { c.MaxTicketsPerUser = 3 })
	tok, _, err := f.k.hs.Sign("maggie")
	if err != nil {
		t.Fatal(err)
	}
	f.store.err = ticket.ErrFull
	if w := serve(f.h.Ticket(), ticketRequest("POST", "Bearer "+tok)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("full store: %d", w.Code)
	}
	f.store.err = nil
	for i := range 3 {
		if w := serve(f.h.Ticket(), ticketRequest("POST", "Bearer "+tok)); w.Code != http.StatusOK {
			t.Fatalf("ticket %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := serve(f.h.Ticket(), ticketRequest("POST", "Bearer "+tok))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th ticket: %d, want 429", w.Code)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 30 || ra > 35 {
		t.Errorf("Retry-After %q, want about the 30s ticket TTL", w.Header().Get("Retry-After"))
	}
	var body struct{ Error string }
	if json.Unmarshal(w.Body.Bytes(), &body) != nil || !strings.Contains(body.Error, "at most 3") {
		t.Errorf("body %s", w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("429 without Cache-Control: no-store")
	}
	if n := f.h.Stats().TicketsOverQuota; n != 1 {
		t.Errorf("TicketsOverQuota %d, want 1", n)
	}
	bob, _, _ := f.k.hs.Sign("bob")
	if w := serve(f.h.Ticket(), ticketRequest("POST", "Bearer "+bob)); w.Code != http.StatusOK {
		t.Fatalf("bob refused: %d", w.Code)
	}
	f.clk.Advance(35 * time.Second)
	if w := serve(f.h.Ticket(), ticketRequest("POST", "Bearer "+tok)); w.Code != http.StatusOK {
		t.Fatalf("maggie refused after the TTL: %d", w.Code)
	}
}

// The quota's cost per /ws_ticket (which verifies a JWT anyway), parallel,
// many users.
func BenchmarkTicketQuotaTake(b *testing.B) {
	q := newTicketQuota(DefaultMaxTicketsPerUser, DefaultTicketTTL, quotaMaxEntries)
	users := make([]string, 4096)
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			q.take(users[i%len(users)], now)
		}
	})
}

package redis

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

var testKey = []byte("test ticket key, 32 bytes at least......")

func newStore(t testing.TB, addr string) *Store {
	t.Helper()
	return newStoreTimeout(t, addr, 10*time.Second)
}

// newStoreTimeout is newStore with its own command timeout: a test about
// exactly-once under a storm must not fail on a slow machine's timeouts,
// which say nothing about exactly-once. The client's connection timeout
// is as long, or rueidis would cut a pipeline that waits 10 s and fail its
// commands with ErrUnavailable all the same.
func newStoreTimeout(t testing.TB, addr string, timeout time.Duration) *Store {
	t.Helper()
	c := redistest.NewClient(t, rueidis.ClientOption{InitAddress: []string{addr}, ConnWriteTimeout: timeout})
	sealer, err := ticket.NewSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Shards: []rueidis.Client{c}, Sealer: sealer, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// redeem runs RedeemAsync and waits for its answer.
func redeem(s *Store, text string, now time.Time) (ticket.Claims, error) {
	type res struct {
		c   ticket.Claims
		err error
	}
	ch := make(chan res, 1)
	if err := s.RedeemAsync([]byte(text), now, func(c ticket.Claims, err error) { ch <- res{c, err} }); err != nil {
		return ticket.Claims{}, err
	}
	r := <-ch
	return r.c, r.err
}

func TestIssueRedeemClaimsAndTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	now := time.Now()
	want := ticket.Claims{
		Subject:        "maggie",
		SessionExpires: time.UnixMilli(now.Add(time.Hour).UnixMilli()),
		Channels:       []string{"news", "chat:*"},
		RemoteAddr:     "127.0.0.1",
		Origin:         "https://example.com",
	}
	text, err := s.IssueText(want, now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != ticket.SealedTextLen {
		t.Fatalf("ticket %d chars, want %d", len(text), ticket.SealedTextLen)
	}
	id, _, _ := s.sealer.Open([]byte(text), now)
	pttl, err := srv.Do("PTTL", s.key(id))
	if n, _ := strconv.Atoi(pttl); err != nil || n <= 0 || n > 30000 {
		t.Fatalf("PTTL = %q, %v; want 0 < ttl <= 30000 ms", pttl, err)
	}
	got, err := redeem(s, text, now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims %+v, want %+v", got, want)
	}
	if _, err := redeem(s, text, now); err != ticket.ErrInvalid {
		t.Fatalf("second redeem: %v, want ErrInvalid", err)
	}
	// The synchronous Redeem agrees.
	text2, _ := s.IssueText(want, now, time.Minute)
	if c, err := s.Redeem([]byte(text2), now); err != nil || c.Subject != "maggie" {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}
	if _, err := s.Redeem([]byte(text2), now); err != ticket.ErrInvalid {
		t.Fatalf("Redeem twice: %v", err)
	}
}

func TestTicketCappedAtSessionEnd(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	now := time.Now()
	text, err := s.IssueText(ticket.Claims{Subject: "u", SessionExpires: now.Add(2 * time.Second)}, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, exp, err := s.sealer.Open([]byte(text), now); err != nil || exp.After(now.Add(2*time.Second)) {
		t.Fatalf("ticket expires %v (%v), want at the session end", exp, err)
	}
	if _, err := redeem(s, text, now.Add(3*time.Second)); err != ticket.ErrInvalid {
		t.Fatalf("redeem after the session end: %v, want ErrInvalid", err)
	}
	if _, err := s.IssueText(ticket.Claims{Subject: "u", SessionExpires: now}, now, time.Minute); err != ticket.ErrInvalid {
		t.Fatalf("issue for an ended session: %v, want ErrInvalid", err)
	}
}

// 10,000 tickets, each redeemed at once from three stores (three clients:
// three nodes): exactly one redeem of each succeeds.
func TestExactlyOnceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = time.Minute
	nodes := []*Store{newStoreTimeout(t, srv.Addr, timeout), newStoreTimeout(t, srv.Addr, timeout), newStoreTimeout(t, srv.Addr, timeout)}
	const n = 10000
	now := time.Now()
	texts := make([]string, n)
	for i := range texts {
		var err error
		if texts[i], err = nodes[i%3].IssueText(ticket.Claims{Subject: "u" + strconv.Itoa(i)}, now, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	wins := make([]atomic.Int32, n)
	var total, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range texts {
		for _, s := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := redeem(s, texts[i], now)
				switch {
				case err == nil:
					if c.Subject != "u"+strconv.Itoa(i) {
						t.Errorf("ticket %d gave claims of %q", i, c.Subject)
					}
					wins[i].Add(1)
					total.Add(1)
				case err != ticket.ErrInvalid:
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d redeems failed with another error than ErrInvalid (first: %v)", f, firstFailure.Load())
	}
	if got := total.Load(); got != n {
		t.Fatalf("%d successes, want exactly %d", got, n)
	}
	for i := range wins {
		if w := wins[i].Load(); w != 1 {
			t.Fatalf("ticket %d admitted %d times", i, w)
		}
	}
}

// A reject storm of forged, malformed and expired tickets never reaches
// Redis: INFO commandstats does not move.
func TestForgedTicketsCostRedisNothing(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	now := time.Now()
	good, err := s.IssueText(ticket.Claims{Subject: "u"}, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ticket.NewSealer([]byte(strings.Repeat("x", 40)))
	id, _ := ticket.New()
	before := srv.Calls()
	for i := range 10000 {
		var text string
		switch i % 4 {
		case 0: // forged: a MAC bit flipped
			b := []byte(good)
			b[len(b)-1-(i/4)%20] ^= 1
			text = string(b)
		case 1: // another key
			text = other.Seal(id, now.Add(time.Minute))
		case 2: // expired
			text = good
			now := now.Add(2 * time.Minute)
			if err := s.RedeemAsync([]byte(text), now, func(ticket.Claims, error) { t.Error("done called for an expired ticket") }); err != ticket.ErrInvalid {
				t.Fatalf("expired: %v", err)
			}
			continue
		case 3: // malformed
			text = good[:30]
		}
		if err := s.RedeemAsync([]byte(text), now, func(ticket.Claims, error) { t.Error("done called for a refused ticket") }); err != ticket.ErrInvalid {
			t.Fatalf("case %d: %v, want ErrInvalid at once", i%4, err)
		}
	}
	if after := srv.Calls(); after != before {
		t.Fatalf("Redis ran %d commands during the reject storm, want 0", after-before)
	}
	if st := s.Stats(); st.Rejected != 10000 {
		t.Fatalf("Rejected = %d, want 10000", st.Rejected)
	}
	// The good ticket still works: nothing was spent.
	if _, err := redeem(s, good, now); err != nil {
		t.Fatalf("good ticket after the storm: %v", err)
	}
}

func TestUnavailableAndBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	now := time.Now()
	text, err := s.IssueText(ticket.Claims{Subject: "u"}, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := s.IssueText(ticket.Claims{Subject: "u"}, now, time.Minute); !errors.Is(err, ticket.ErrUnavailable) {
		t.Fatalf("issue with Redis down: %v, want ErrUnavailable", err)
	}
	if _, err := redeem(s, text, now); !errors.Is(err, ticket.ErrUnavailable) {
		t.Fatalf("redeem with Redis down: %v, want ErrUnavailable", err)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := time.Now()
		text, err := s.IssueText(ticket.Claims{Subject: "u"}, now, time.Minute)
		if err == nil {
			if _, err = redeem(s, text, now); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not working 5 s after Redis returned: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedeemAsyncBounded(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	s.slots = make(chan struct{}, 1)
	s.slots <- struct{}{} // the one slot is taken
	now := time.Now()
	text, _ := s.IssueText(ticket.Claims{Subject: "u"}, now, time.Minute)
	if err := s.RedeemAsync([]byte(text), now, func(ticket.Claims, error) { t.Error("done called") }); err != ticket.ErrUnavailable {
		t.Fatalf("past MaxInFlight: %v, want ErrUnavailable", err)
	}
}

func TestDecodeClaimsRefusesForeignValues(t *testing.T) {
	enc := encodeClaims(nil, ticket.Claims{Subject: "maggie", Channels: []string{"a", "b"}, Origin: "o"})
	if _, ok := decodeClaims(enc); !ok {
		t.Fatal("own encoding refused")
	}
	for i := range enc {
		if _, ok := decodeClaims(enc[:i]); ok {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	for _, b := range [][]byte{append(append([]byte(nil), enc...), 0), []byte("plain text"), {2}, {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, ok := decodeClaims(b); ok {
			t.Fatalf("%q accepted", b)
		}
	}
}

func TestJumpSpreadsAndIsStable(t *testing.T) {
	counts := make([]int, 3)
	moved := 0
	for i := range 30000 {
		k := uint64(i) * 0x9E3779B97F4A7C15
		b3 := jump(k, 3)
		counts[b3]++
		if b4 := jump(k, 4); b4 != b3 && b4 != 3 {
			moved++
		}
	}
	for i, c := range counts {
		if c < 9000 || c > 11000 {
			t.Fatalf("shard %d got %d of 30000 keys", i, c)
		}
	}
	if moved != 0 {
		t.Fatalf("%d keys moved between old shards when one was added", moved)
	}
}

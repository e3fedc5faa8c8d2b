package engine

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// asyncStore is a test AsyncRedeemer over memStore: each redeem runs on a
// goroutine of its own, after gate lets it through (when gate is set).
type asyncStore struct {
	*memStore
	gate        chan struct{}
	unavailable atomic.Bool // answer ErrUnavailable from the goroutine
	refuseStart atomic.Bool // answer ErrUnavailable at once
	started     atomic.Int32
}

func newAsyncStore(gated bool) *asyncStore {
	s := &asyncStore{memStore: newMemStore()}
	if gated {
		s.gate = make(chan struct{})
	}
	return s
}

func (s *asyncStore) RedeemAsync(text []byte, now time.Time, done func(ticket.Claims, error)) error {
	if s.refuseStart.Load() {
		return ticket.ErrUnavailable
	}
	if strings.HasPrefix(string(text), "forged") {
		return ticket.ErrInvalid
	}
	s.started.Add(1)
	t := string(text)
	go func() {
		if s.gate != nil {
			<-s.gate
		}
		if s.unavailable.Load() {
			done(ticket.Claims{}, ticket.ErrUnavailable)
			return
		}
		c, err := s.memStore.Redeem([]byte(t), now)
		done(c, err)
	}()
	return nil
}

// addText stores a ticket of any text (a sealed one is 52 characters).
func (s *asyncStore) addText(text, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[text] = ticket.Claims{Subject: user}
	return text
}

func startAsync(t *testing.T, st *asyncStore, cfg Config) *Server {
	t.Helper()
	cfg.Store = st
	s, _ := startServer(t, cfg)
	if st.gate != nil {
		t.Cleanup(func() { close(st.gate) })
	}
	return s
}

func upgradeOn(t *testing.T, s *Server, tk string, after ...[]byte) (*bufio.Reader, func()) {
	t.Helper()
	conn := dial(t, s)
	req := []byte(upgradeRequest(s.cfg.Path, tk, ""))
	for _, a := range after {
		req = append(req, a...)
	}
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(conn), func() { conn.Close() }
}

func TestAsyncAdmissionAdmitsAndKeepsPipelinedFrames(t *testing.T) {
	st := newAsyncStore(false)
	s := startAsync(t, st, Config{Echo: true})
	long := st.addText(strings.Repeat("S", ticket.SealedTextLen), "sealed")
	for _, tk := range []string{st.add("maggie"), long} {
		// A frame sent right behind the request waits in the buffer
		// through the redeem and is read once the connection is open.
		br, _ := upgradeOn(t, s, tk, clientFrame(true, ws.OpText, []byte("hi")))
		if resp := readResponse(t, br); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		if f := readFrame(t, br); !strings.Contains(string(f.payload), `"type":"welcome"`) {
			t.Fatalf("first frame %q, want the welcome", f.payload)
		}
		if f := readFrame(t, br); f.op != ws.OpText || string(f.payload) != "hi" {
			t.Fatalf("echo %v %q, want the pipelined frame", f.op, f.payload)
		}
	}
	if got := st.started.Load(); got != 2 {
		t.Fatalf("%d async redeems, want 2 (the inline Redeem must not be used)", got)
	}
	if h := s.Stats().Handshakes; h != 2 {
		t.Fatalf("Handshakes = %d, want 2", h)
	}
}

func TestAsyncAdmissionRefusals(t *testing.T) {
	st := newAsyncStore(false)
	s := startAsync(t, st, Config{})
	expect := func(tk string, status int, retryAfter string) {
		t.Helper()
		br, _ := upgradeOn(t, s, tk)
		resp := readResponse(t, br)
		if resp.StatusCode != status || resp.Header.Get("Retry-After") != retryAfter || (status != 101 && !resp.Close) {
			t.Fatalf("ticket %.8s…: status %d Retry-After %q, want %d %q", tk, resp.StatusCode, resp.Header.Get("Retry-After"), status, retryAfter)
		}
		if body, _ := io.ReadAll(resp.Body); status != 101 && len(body) == 0 {
			t.Fatal("empty body")
		}
	}
	expect(strings.Repeat("U", ticket.TextLen), http.StatusUnauthorized, "") // unknown: from the goroutine
	expect("forged"+strings.Repeat("F", 20), http.StatusUnauthorized, "")    // refused at once
	used := st.add("maggie")
	expect(used, http.StatusSwitchingProtocols, "")
	expect(used, http.StatusUnauthorized, "") // already used
	st.unavailable.Store(true)
	expect(st.add("maggie"), http.StatusServiceUnavailable, "1")
	st.unavailable.Store(false)
	st.refuseStart.Store(true)
	expect(st.add("maggie"), http.StatusServiceUnavailable, "1")
	if got := s.Stats().Rejected[RejectUnavailable]; got != 2 {
		t.Fatalf("Rejected[unavailable] = %d, want 2", got)
	}
}

func TestAsyncAdmissionLoopServesOthersWhileWaiting(t *testing.T) {
	st := newAsyncStore(true)
	s := startAsync(t, st, Config{Loops: 1})
	waiting, _ := upgradeOn(t, s, st.add("maggie"))
	for st.started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The one loop answers another connection while the redeem waits.
	other, _ := upgradeOn(t, s, "")
	if resp := readResponse(t, other); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("other connection: status %d, want 401", resp.StatusCode)
	}
	st.gate <- struct{}{}
	if resp := readResponse(t, waiting); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("waiting connection: status %d, want 101", resp.StatusCode)
	}
}

func TestAsyncAdmissionClosedWhileWaitingIsNeverAdmitted(t *testing.T) {
	st := newAsyncStore(true)
	s := startAsync(t, st, Config{Loops: 1})
	tk := st.add("maggie")
	_, hangUp := upgradeOn(t, s, tk)
	for st.started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	hangUp()
	time.Sleep(100 * time.Millisecond) // the loop sees the close
	st.gate <- struct{}{}
	// A later connection on the same loop proves the answer was handled.
	br, _ := upgradeOn(t, s, "")
	readResponse(t, br)
	time.Sleep(50 * time.Millisecond)
	if st := s.Stats(); st.Handshakes != 0 || st.OpenConns != 0 {
		t.Fatalf("Handshakes %d OpenConns %d after the waiting client left, want 0 0", st.Handshakes, st.OpenConns)
	}
	if st.has(tk) {
		t.Fatal("the ticket is unspent; its redeem had started, so it must be spent")
	}
}

func TestAsyncAdmissionDeadlineKeepsRunning(t *testing.T) {
	st := newAsyncStore(true)
	s := startAsync(t, st, Config{HandshakeTimeout: 300 * time.Millisecond})
	br, _ := upgradeOn(t, s, st.add("maggie"))
	start := time.Now()
	expectEOF(t, br)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("closed after %v, want within a second of the 300ms deadline", d)
	}
	if got := s.Stats().Rejected[RejectTimeout]; got != 1 {
		t.Fatalf("Rejected[timeout] = %d, want 1", got)
	}
}

func TestAsyncAdmissionMaxConnsRecheckedAfterRedeem(t *testing.T) {
	st := newAsyncStore(true)
	s := startAsync(t, st, Config{MaxConns: 1, Loops: 1})
	first, _ := upgradeOn(t, s, st.add("a"))
	second, _ := upgradeOn(t, s, st.add("b"))
	for st.started.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	st.gate <- struct{}{}
	st.gate <- struct{}{}
	codes := map[int]int{}
	for _, br := range []*bufio.Reader{first, second} {
		codes[readResponse(t, br).StatusCode]++
	}
	if codes[101] != 1 || codes[503] != 1 {
		t.Fatalf("statuses %v, want one 101 and one 503 (MaxConns 1)", codes)
	}
	if n := s.Stats().OpenConns; n != 1 {
		t.Fatalf("OpenConns = %d, want 1", n)
	}
}

// A refresh through an AsyncRedeemer is redeemed off the loop and answered
// on it; a ticket refused at once is answered at once.
func TestAsyncRefresh(t *testing.T) {
	st := newAsyncStore(false)
	s := startAsync(t, st, Config{})
	c := connectCh(t, s, st.memStore, ticket.Claims{Subject: "maggie", SessionExpires: time.Now().Add(time.Minute)}, "")
	before := st.started.Load()
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	c.send(`{"type":"refresh","id":4,"ticket":"` + st.addClaims(ticket.Claims{Subject: "maggie", SessionExpires: later}) + `"}`)
	if m := c.expect("refreshed"); num(t, m, "id") != 4 || num(t, m, "expires") != later.Unix() {
		t.Fatalf("refreshed %v", m)
	}
	if got := st.started.Load() - before; got != 1 {
		t.Fatalf("%d async redeems for the refresh, want 1 (the inline Redeem must not run on the loop)", got)
	}
	c.send(`{"type":"refresh","id":5,"ticket":"forged` + strings.Repeat("F", 20) + `"}`)
	if m := c.expect("error"); m["code"] != codeForbidden || num(t, m, "id") != 5 {
		t.Fatalf("forged ticket: %v", m)
	}
	c.send(`{"type":"refresh","id":6,"ticket":"` + st.add("bob") + `"}`)
	if m := c.expect("error"); m["code"] != codeForbidden || num(t, m, "id") != 6 {
		t.Fatalf("other user's ticket: %v", m)
	}
}

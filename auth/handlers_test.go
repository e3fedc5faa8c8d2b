package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/turnstile-push/turnstile/auth/ticket"
)

// fakeStore is a ticket.Store that can be told to fail.
type fakeStore struct {
	mu     sync.Mutex
	err    error
	issued []ticket.Claims
	ttls   []time.Duration
}

func (f *fakeStore) Issue(c ticket.Claims, now time.Time, ttl time.Duration) (ticket.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return ticket.Ticket{}, f.err
	}
	f.issued = append(f.issued, c)
	f.ttls = append(f.ttls, ttl)
	return ticket.New()
}

func (f *fakeStore) Redeem([]byte, time.Time) (ticket.Claims, error) {
	return ticket.Claims{}, ticket.ErrInvalid
}

// fixture is a Handlers over dev users, fixed-clock HS256 tokens and a fake store.
type fixture struct {
	k     *keys
	clk   *fakeClock
	store *fakeStore
	h     *Handlers
	logs  *bytes.Buffer
}

func newFixture(t *testing.T, change func(*HandlerConfig)) *fixture {
	t.Helper()
	f := &fixture{k: newKeys(t), clk: newFakeClock(), store: &fakeStore{}, logs: &bytes.Buffer{}}
	cfg := HandlerConfig{
		Users:  DevUsers(),
		Tokens: f.k.hs,
		Store:  f.store,
		Now:    f.clk.Now,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if change != nil {
		change(&cfg)
	}
	var err error
	if f.h, err = NewHandlers(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) login(body string) *httptest.ResponseRecorder {
	return serve(f.h.Auth(), httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(body)))
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// checkCommon asserts what every answer of these handlers has.
func checkCommon(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body, err)
	}
	if w.Code != http.StatusOK {
		if msg, ok := body["error"].(string); !ok || msg == "" || len(body) != 1 {
			t.Errorf("error body = %s, want {\"error\":\"…\"}", w.Body)
		}
	}
	return body
}

var authCases = []struct {
	name   string
	method string
	body   string
	status int
}{
	{"ok", "POST", `{"user":"maggie","pwd":"secret"}`, 200},
	{"ok with spaces", "POST", " {\"pwd\":\"secret\", \"user\":\"maggie\"}\n", 200},
	{"wrong password", "POST", `{"user":"maggie","pwd":"Secret"}`, 401},
	{"unknown user", "POST", `{"user":"mallory","pwd":"secret"}`, 401},
	{"empty password", "POST", `{"user":"maggie","pwd":""}`, 401},
	{"GET", "GET", "", 405},
	{"PUT", "PUT", `{"user":"maggie","pwd":"secret"}`, 405},
	{"empty body", "POST", "", 400},
	{"malformed JSON", "POST", `{"user":"maggie",`, 400},
	{"not an object", "POST", `["maggie","secret"]`, 400},
	{"unknown field", "POST", `{"user":"maggie","pwd":"secret","admin":true}`, 400},
	{"missing user", "POST", `{"pwd":"secret"}`, 400},
	{"empty user", "POST", `{"user":"","pwd":"secret"}`, 400},
	{"missing pwd", "POST", `{"user":"maggie"}`, 400},
	{"null pwd", "POST", `{"user":"maggie","pwd":null}`, 400},
	{"pwd not a string", "POST", `{"user":"maggie","pwd":123}`, 400},
	{"trailing data", "POST", `{"user":"maggie","pwd":"secret"}{}`, 400},
	{"password over 72 bytes", "POST", `{"user":"maggie","pwd":"` + strings.Repeat("p", 73) + `"}`, 400},
	{"body over the limit", "POST", `{"user":"maggie","pwd":"secret","x":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`, 413},
}

func TestAuthHandler(t *testing.T) {
	f := newFixture(t, func(c *HandlerConfig) { c.Throttle.Disabled = true })
	for _, c := range authCases {
		t.Run(c.name, func(t *testing.T) {
			w := serve(f.h.Auth(), httptest.NewRequest(c.method, "/auth", strings.NewReader(c.body)))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			body := checkCommon(t, w)
			switch c.status {
			case 200:
				tok, _ := body["token"].(string)
				claims, err := f.k.hs.Verify(tok)
				if err != nil || claims.Subject != "maggie" {
					t.Fatalf("token does not verify: %+v %v", claims, err)
				}
				if exp, _ := body["expires"].(float64); int64(exp) != testNow.Add(DefaultTokenTTL).Unix() || len(body) != 2 {
					t.Errorf("body = %s", w.Body)
				}
			case 401:
				if body["error"] != "wrong user or password" {
					t.Errorf("401 body %s differs from the one for every 401", w.Body)
				}
			case 405:
				if a := w.Header().Get("Allow"); a != "POST" {
					t.Errorf("Allow = %q", a)
				}
			}
		})
	}
	var want Stats
	for _, c := range authCases {
		switch c.status {
		case 200:
			want.LoginsOK++
		case 401:
			want.LoginsFailed++
		default:
			want.LoginsBadRequest++
		}
	}
	if got := f.h.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestAuthNoUsersIs404(t *testing.T) {
	f := newFixture(t, func(c *HandlerConfig) { c.Users = nil })
	w := f.login(`{"user":"maggie","pwd":"secret"}`)
	if w.Code != 404 {
		t.Fatalf("status %d, want 404", w.Code)
	}
	checkCommon(t, w)
}

func TestAuthThrottle(t *testing.T) {
	f := newFixture(t, func(c *HandlerConfig) {
		c.Throttle = ThrottleConfig{AddrBurst: 2, AddrInterval: 20 * time.Second}
	})
	var cc countingCompare
	f.h.cfg.Users.compare = cc.compare
	for i := range 2 {
		if w := f.login(`{"user":"maggie","pwd":"wrong"}`); w.Code != 401 {
			t.Fatalf("failure %d: status %d", i, w.Code)
		}
	}
	// Now even the right password is refused from this address, without bcrypt.
	w := f.login(`{"user":"maggie","pwd":"secret"}`)
	if w.Code != 429 {
		t.Fatalf("status %d, want 429", w.Code)
	}
	checkCommon(t, w)
	if ra := w.Header().Get("Retry-After"); ra != "20" {
		t.Errorf("Retry-After = %q, want 20", ra)
	}
	if len(cc.costs) != 2 {
		t.Errorf("%d bcrypt compares, want 2 (none for the 429)", len(cc.costs))
	}
	// Another address is not throttled.
	r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(`{"user":"maggie","pwd":"secret"}`))
	r.RemoteAddr = "198.51.100.7:4444"
	if w := serve(f.h.Auth(), r); w.Code != 200 {
		t.Errorf("other address: status %d, want 200", w.Code)
	}
	// After Retry-After, the address may log in.
	f.clk.Advance(20 * time.Second)
	if w := f.login(`{"user":"maggie","pwd":"secret"}`); w.Code != 200 {
		t.Errorf("after Retry-After: status %d, want 200", w.Code)
	}
	st := f.h.Stats()
	if st.LoginsOK != 2 || st.LoginsFailed != 2 || st.LoginsThrottled != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Behind a proxy the hook names the client; without it X-Forwarded-For is ignored.
func TestAuthClientAddr(t *testing.T) {
	f := newFixture(t, func(c *HandlerConfig) { c.Throttle = ThrottleConfig{AddrBurst: 1} })
	spoof := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(`{"user":"maggie","pwd":"wrong"}`))
		r.Header.Set("X-Forwarded-For", "203.0.113."+strconv.Itoa(int(f.clk.ns.Add(1)%200)))
		return serve(f.h.Auth(), r)
	}
	spoof()
	if w := spoof(); w.Code != 429 {
		t.Errorf("a fresh X-Forwarded-For escaped the throttle: status %d", w.Code)
	}

	g := newFixture(t, func(c *HandlerConfig) {
		c.ClientAddr = func(r *http.Request) string { return r.Header.Get("X-Real-IP") }
	})
	r := httptest.NewRequest(http.MethodGet, "/ws_ticket", nil)
	tok, _, _ := g.k.hs.Sign("maggie")
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("X-Real-IP", "203.0.113.9")
	if w := serve(g.h.Ticket(), r); w.Code != 200 || g.store.issued[0].RemoteAddr != "203.0.113.9" {
		t.Errorf("ClientAddr hook not used: %d %+v", w.Code, g.store.issued)
	}
}

func TestAuthNeverLogsSecrets(t *testing.T) {
	f := newFixture(t, nil)
	f.login(`{"user":"maggie","pwd":"secret"}`)
	f.login(`{"user":"hunter2-typed-as-user","pwd":"topsecretpassword"}`)
	tok, _, _ := f.k.hs.Sign("maggie")
	r := httptest.NewRequest(http.MethodGet, "/ws_ticket", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := serve(f.h.Ticket(), r)
	var resp ticketResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	bad := httptest.NewRequest(http.MethodGet, "/ws_ticket", nil)
	bad.Header.Set("Authorization", "Bearer "+tok+"x")
	serve(f.h.Ticket(), bad)

	logs := f.logs.String()
	if !strings.Contains(logs, "login") || !strings.Contains(logs, "ticket refused") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	for _, secret := range []string{"secret", "topsecretpassword", "hunter2", tok[:20], tok[len(tok)-20:], resp.Ticket} {
		if secret == "" || strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

// ticketRequest is a /ws_ticket request with an Authorization header (none if empty).
func ticketRequest(method, authz string) *http.Request {
	r := httptest.NewRequest(method, "http://example.com:8080/ws_ticket", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

func TestTicketHandler(t *testing.T) {
	f := newFixture(t, nil)
	tok, tokExp, err := f.k.hs.Sign("maggie")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		method    string
		authz     string
		storeErr  error
		status    int
		challenge string
	}{
		{"GET", "GET", "Bearer " + tok, nil, 200, ""},
		{"POST", "POST", "Bearer " + tok, nil, 200, ""},
		{"scheme is case-insensitive", "GET", "bearer " + tok, nil, 200, ""},
		{"PUT", "PUT", "Bearer " + tok, nil, 405, ""},
		{"DELETE", "DELETE", "Bearer " + tok, nil, 405, ""},
		{"no Authorization", "GET", "", nil, 401, challengeMissing},
		{"Basic scheme", "GET", "Basic bWFnZ2llOnNlY3JldA==", nil, 401, challengeInvalid},
		{"Bearer without token", "GET", "Bearer", nil, 401, challengeInvalid},
		{"Bearer and space only", "GET", "Bearer   ", nil, 401, challengeInvalid},
		{"token without scheme", "GET", tok, nil, 401, challengeInvalid},
		{"garbage token", "POST", "Bearer abc.def.ghi", nil, 401, challengeInvalid},
		{"store full", "GET", "Bearer " + tok, ticket.ErrFull, 503, ""},
		{"store unavailable", "POST", "Bearer " + tok, ticket.ErrUnavailable, 503, ""},
		{"store broken", "GET", "Bearer " + tok, errors.New("disk on fire"), 500, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.store.err = c.storeErr
			n := len(f.store.issued)
			w := serve(f.h.Ticket(), ticketRequest(c.method, c.authz))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			body := checkCommon(t, w)
			if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, c.challenge)
			}
			switch c.status {
			case 200:
				text, _ := body["ticket"].(string)
				if _, err := ticket.Parse([]byte(text)); err != nil {
					t.Errorf("ticket %q does not parse: %v", text, err)
				}
				if url := body["url"]; url != "ws://example.com:8081/ws?ticket="+text {
					t.Errorf("url = %v", url)
				}
				if exp, _ := body["expires"].(float64); int64(exp) != testNow.Add(DefaultTicketTTL).Unix() {
					t.Errorf("expires = %v", body["expires"])
				}
				got := f.store.issued[len(f.store.issued)-1]
				if got.Subject != "maggie" || !got.SessionExpires.Equal(tokExp) || got.RemoteAddr != "192.0.2.1" {
					t.Errorf("claims given to the store = %+v", got)
				}
				if ttl := f.store.ttls[len(f.store.ttls)-1]; ttl != DefaultTicketTTL {
					t.Errorf("ttl = %v", ttl)
				}
			case 405:
				if a := w.Header().Get("Allow"); a != "GET, POST" {
					t.Errorf("Allow = %q", a)
				}
			case 503:
				if w.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}
			if c.status != 200 && len(f.store.issued) != n {
				t.Error("a refused request issued a ticket")
			}
		})
	}
	st := f.h.Stats()
	if st.TicketsIssued != 3 || st.TicketsRefused != 6 || st.TicketIssueFailures != 3 || st.TicketsBadRequest != 2 || st.LoginsBadRequest != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTicketHandlerOriginIsBound(t *testing.T) {
	f := newFixture(t, nil)
	tok, _, _ := f.k.hs.Sign("maggie")
	r := ticketRequest("GET", "Bearer "+tok)
	r.Header.Set("Origin", "https://app.example.com")
	if w := serve(f.h.Ticket(), r); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if o := f.store.issued[0].Origin; o != "https://app.example.com" {
		t.Errorf("Origin = %q", o)
	}
}

// Every attack token gets 401 with error="invalid_token" through the
// handler, for every key type.
func TestTicketHandlerRefusesAttacks(t *testing.T) {
	hs := newFixture(t, nil)
	fixtures := map[string]*fixture{"hs": hs}
	for name, v := range hs.k.verifiers {
		if name != "hs" {
			fixtures[name] = newFixture(t, func(c *HandlerConfig) {
				c.Tokens = v
				if !v.CanSign() {
					c.Users = nil
				}
			})
		}
	}
	for _, a := range attacks(t, hs.k) {
		t.Run(a.verifier+"/"+a.name, func(t *testing.T) {
			f := fixtures[a.verifier]
			w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+a.token))
			if w.Code != 401 {
				t.Fatalf("status %d, want 401", w.Code)
			}
			checkCommon(t, w)
			if got := w.Header().Get("WWW-Authenticate"); got != challengeInvalid {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	for name, f := range fixtures {
		if len(f.store.issued) != 0 {
			t.Errorf("%s: an attack token got a ticket", name)
		}
		// And each verifier's good token does work, so the 401s are not
		// for another reason.
		tok := hs.k.signers[name](goodClaims(), nil)
		if w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+tok)); w.Code != 200 {
			t.Errorf("%s: good token got %d: %s", name, w.Code, w.Body)
		}
	}
}

func TestTicketURL(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*HandlerConfig)
		host string
		want string
	}{
		{"host with port", nil, "example.com:8080", "ws://example.com:8081/ws?ticket="},
		{"host without port", nil, "example.com", "ws://example.com:8081/ws?ticket="},
		{"IPv4", nil, "10.0.0.1:80", "ws://10.0.0.1:8081/ws?ticket="},
		{"IPv6", nil, "[::1]:8080", "ws://[::1]:8081/ws?ticket="},
		{"IPv6 without port", nil, "[2001:db8::1]", "ws://[2001:db8::1]:8081/ws?ticket="},
		{"port and path", func(c *HandlerConfig) { c.WSPort, c.WSPath = "9000", "/push" }, "h:1", "ws://h:9000/push?ticket="},
		{"configured URL", func(c *HandlerConfig) { c.WSURL = "wss://push.example.com/ws" }, "internal:8080", "wss://push.example.com/ws?ticket="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.cfg)
			tok, _, _ := f.k.hs.Sign("maggie")
			r := ticketRequest("GET", "Bearer "+tok)
			r.Host = c.host
			w := serve(f.h.Ticket(), r)
			var resp ticketResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if resp.URL != c.want+resp.Ticket {
				t.Errorf("url = %q, want %q", resp.URL, c.want+resp.Ticket)
			}
		})
	}
}

// The handler's ticket redeems once at the real store, for the token's user;
// past its capacity the handler answers 503.
func TestTicketWithRealMap(t *testing.T) {
	store := ticket.NewMap(ticket.MapConfig{Capacity: 1})
	f := newFixture(t, func(c *HandlerConfig) { c.Store = store })
	tok, exp, _ := f.k.hs.Sign("maggie")
	w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+tok))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp ticketResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+tok)); w.Code != 503 {
		t.Errorf("past capacity: status %d, want 503", w.Code)
	}
	c, err := store.Redeem([]byte(resp.Ticket), testNow.Add(time.Second))
	if err != nil || c.Subject != "maggie" || !c.SessionExpires.Equal(exp) {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}
	if _, err := store.Redeem([]byte(resp.Ticket), testNow.Add(time.Second)); !errors.Is(err, ticket.ErrInvalid) {
		t.Errorf("second Redeem = %v, want ErrInvalid", err)
	}
}

// A ticket dies with the session it was traded for (the Map caps it), so
// the "expires" handed out must not promise more.
func TestTicketExpiresWithSession(t *testing.T) {
	store := ticket.NewMap(ticket.MapConfig{Capacity: 4})
	f := newFixture(t, func(c *HandlerConfig) { c.Store, c.TicketTTL = store, time.Hour })
	tok, tokExp, _ := f.k.hs.Sign("maggie") // 15 minutes, shorter than the ticket TTL
	w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+tok))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp ticketResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.Expires != tokExp.Unix() {
		t.Errorf("expires = %d, want the session's end %d (not now+TTL %d)", resp.Expires, tokExp.Unix(), testNow.Add(time.Hour).Unix())
	}
	if _, err := store.Redeem([]byte(resp.Ticket), time.Unix(resp.Expires, 0)); !errors.Is(err, ticket.ErrInvalid) {
		t.Errorf("Redeem at the stated expiry = %v, want ErrInvalid", err)
	}
}

func TestNewHandlersRefusesBadConfig(t *testing.T) {
	k := newKeys(t)
	base := func() HandlerConfig { return HandlerConfig{Tokens: k.hs, Store: &fakeStore{}} }
	cases := []struct {
		name   string
		change func(*HandlerConfig)
		want   error
	}{
		{"no tokens", func(c *HandlerConfig) { c.Tokens = nil }, ErrNoTokens},
		{"no store", func(c *HandlerConfig) { c.Store = nil }, ErrNoStore},
		{"http URL", func(c *HandlerConfig) { c.WSURL = "http://example.com/ws" }, ErrBadWSURL},
		{"URL with query", func(c *HandlerConfig) { c.WSURL = "wss://example.com/ws?a=b" }, ErrBadWSURL},
		{"URL without host", func(c *HandlerConfig) { c.WSURL = "ws:///ws" }, ErrBadWSURL},
		{"relative URL", func(c *HandlerConfig) { c.WSURL = "/ws" }, ErrBadWSURL},
		{"path without slash", func(c *HandlerConfig) { c.WSPath = "ws" }, nil},
		{"negative ticket TTL", func(c *HandlerConfig) { c.TicketTTL = -time.Second }, nil},
	}
	for _, c := range cases {
		cfg := base()
		c.change(&cfg)
		_, err := NewHandlers(cfg)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := NewHandlers(base()); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Nanosecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 30 * time.Second: "30"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}

// The whole path over a real loopback HTTP server: login, then a ticket that
// the real store redeems, with the ws URL derived from the request's host.
func TestLoginToTicketOverHTTP(t *testing.T) {
	store := ticket.NewMap(ticket.MapConfig{Capacity: 16})
	wallClock, err := NewHS256([]byte(strings.Repeat("k", MinSecretBytes)), TokenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *HandlerConfig) { c.Store, c.Tokens, c.Now = store, wallClock, nil })
	mux := http.NewServeMux()
	mux.Handle("/auth", f.h.Auth())
	mux.Handle("/ws_ticket", f.h.Ticket())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}

	resp, err := client.Post(srv.URL+"/auth", "application/json", strings.NewReader(`{"user":"maggie","pwd":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login loginResponse
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || login.Token == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("/auth: %d %+v %v", resp.StatusCode, login, resp.Header)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ws_ticket", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr ticketResponse
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 || tr.URL != "ws://127.0.0.1:8081/ws?ticket="+tr.Ticket {
		t.Fatalf("/ws_ticket: %d %+v", resp.StatusCode, tr)
	}
	if c, err := store.Redeem([]byte(tr.Ticket), time.Now()); err != nil || c.Subject != "maggie" || c.RemoteAddr != "127.0.0.1" {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}

	// An oversized body is cut off with 413, not read to the end.
	resp, err = client.Post(srv.URL+"/auth", "application/json", strings.NewReader(`{"user":"`+strings.Repeat("x", 1<<20)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("1 MB body: status %d, want 413", resp.StatusCode)
	}
}

// A token that expired a moment ago gets no ticket: exp has no leeway, in
// Verify as at /ws_ticket (one rule), and its session is over anyway.
func TestTicketRefusesJustExpiredToken(t *testing.T) {
	f := newFixture(t, nil) // its clock reads testNow
	// Signed 15m+2s ago with the default 15m TTL: expired 2 s before testNow.
	past, err := NewHS256(f.k.secret, TokenConfig{Now: func() time.Time { return testNow.Add(-15*time.Minute - 2*time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := past.Sign("maggie")
	if _, err := f.k.hs.Verify(tok); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("Verify = %v, want expired: exp gets no leeway", err)
	}
	w := serve(f.h.Ticket(), ticketRequest("GET", "Bearer "+tok))
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("status %d, want 401 with a challenge: %s", w.Code, w.Body)
	}
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	if len(f.store.issued) != 0 {
		t.Fatal("a ticket was issued for an ended session")
	}
}

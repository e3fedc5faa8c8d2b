package auth

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/turnstile-push/turnstile/auth/ticket"
)

// Handler defaults.
const (
	DefaultTicketTTL    = 30 * time.Second
	DefaultWSPort       = "8081"
	DefaultWSPath       = "/ws"
	DefaultMaxBodyBytes = 4 << 10
)

// HandlerConfig configures the /auth and /ws_ticket handlers. Tokens and
// Store are required; every other zero value works.
type HandlerConfig struct {
	// Users checks /auth logins; nil makes /auth answer 404.
	Users *Users
	// Tokens signs /auth tokens and verifies /ws_ticket bearers.
	Tokens *Tokens
	// Store issues tickets.
	Store ticket.Store
	// TicketTTL is a ticket's lifetime; default 30s.
	TicketTTL time.Duration
	// WSURL is the public WebSocket URL handed out with tickets, e.g.
	// "wss://push.example.com/ws" behind a proxy. Empty: derived per request
	// as "ws://<request host without port>:<WSPort><WSPath>".
	WSURL string
	// WSPort and WSPath build the derived URL; defaults "8081" and "/ws".
	WSPort, WSPath string
	// Throttle limits failed logins.
	Throttle ThrottleConfig
	// MaxTicketsPerUser is the most tickets /ws_ticket issues to one user
	// within TicketTTL (429 past it; see ticketquota.go). 0: 100; negative:
	// no limit.
	MaxTicketsPerUser int
	// MaxBodyBytes caps the /auth body (413 past it); default 4 KiB.
	MaxBodyBytes int64
	// ClientAddr names the client for throttling and ticket binding. Default:
	// the host of r.RemoteAddr. X-Forwarded-For is spoofable and trusted only
	// if this hook reads it (set it when behind a trusted proxy).
	ClientAddr func(r *http.Request) string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger gets a line per login (info; failures are bcrypt-bound) and per
	// throttled login or refused token (debug: an attacker sets their rate).
	// Never a password, token or ticket. Default: discard.
	Logger *slog.Logger
}

// Stats are the handlers' counters since start.
type Stats struct {
	LoginsOK            uint64 // 200 from /auth
	LoginsFailed        uint64 // 401 from /auth
	LoginsThrottled     uint64 // 429 from /auth
	LoginsBadRequest    uint64 // 400, 405 and 413 from /auth
	TicketsIssued       uint64 // 200 from /ws_ticket
	TicketsRefused      uint64 // 401 from /ws_ticket (no or bad token)
	TicketIssueFailures uint64 // 503 and 500 from /ws_ticket (store full or down)
	TicketsBadRequest   uint64 // 405 from /ws_ticket
	TicketsOverQuota    uint64 // 429 from /ws_ticket (MaxTicketsPerUser)
}

// Handlers serves POST /auth and GET|POST /ws_ticket. Its handlers are safe
// for concurrent requests; Stats is safe from any goroutine.
type Handlers struct {
	cfg      HandlerConfig
	throttle *Throttle
	quota    *ticketQuota // nil: no per-user limit
	// wsBase is cfg.WSURL plus "?", or "" to derive it per request.
	wsBase string

	loginsOK, loginsFailed, loginsThrottled, loginsBadRequest        atomic.Uint64
	ticketsIssued, ticketsRefused, ticketFailures, ticketsBadRequest atomic.Uint64
	ticketsOverQuota                                                 atomic.Uint64
}

// NewHandlers checks cfg, fills in defaults and returns the handlers. It
// keeps cfg's Users, Tokens and Store, which must be safe for concurrent use.
func NewHandlers(cfg HandlerConfig) (*Handlers, error) {
	if cfg.Tokens == nil {
		return nil, ErrNoTokens
	}
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if cfg.Users != nil && !cfg.Tokens.CanSign() {
		return nil, ErrUsersNeedSigner
	}
	if cfg.TicketTTL == 0 {
		cfg.TicketTTL = DefaultTicketTTL
	}
	if cfg.TicketTTL < 0 {
		return nil, errors.New("auth: ticket TTL must be positive")
	}
	if cfg.WSPort == "" {
		cfg.WSPort = DefaultWSPort
	}
	if cfg.WSPath == "" {
		cfg.WSPath = DefaultWSPath
	}
	if !strings.HasPrefix(cfg.WSPath, "/") {
		return nil, errors.New("auth: ws path must start with /")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = remoteHost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTicketsPerUser == 0 {
		cfg.MaxTicketsPerUser = DefaultMaxTicketsPerUser
	}
	if cfg.MaxTicketsPerUser > MaxTicketQuota {
		return nil, errors.New("auth: at most 65535 tickets per user")
	}
	h := &Handlers{cfg: cfg, throttle: NewThrottle(cfg.Throttle, cfg.Now),
		quota: newTicketQuota(cfg.MaxTicketsPerUser, cfg.TicketTTL, quotaMaxEntries)}
	if cfg.WSURL != "" {
		u, err := url.Parse(cfg.WSURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
			return nil, ErrBadWSURL
		}
		h.wsBase = cfg.WSURL + "?"
	}
	return h, nil
}

// Stats returns the counters. Safe from any goroutine.
func (h *Handlers) Stats() Stats {
	return Stats{
		LoginsOK:            h.loginsOK.Load(),
		LoginsFailed:        h.loginsFailed.Load(),
		LoginsThrottled:     h.loginsThrottled.Load(),
		LoginsBadRequest:    h.loginsBadRequest.Load(),
		TicketsIssued:       h.ticketsIssued.Load(),
		TicketsRefused:      h.ticketsRefused.Load(),
		TicketIssueFailures: h.ticketFailures.Load(),
		TicketsBadRequest:   h.ticketsBadRequest.Load(),
		TicketsOverQuota:    h.ticketsOverQuota.Load(),
	}
}

// Auth is POST /auth: {"user","pwd"} → {"token","expires"}. The handler
// serves concurrent requests; Auth may be called from any goroutine.
func (h *Handlers) Auth() http.Handler { return http.HandlerFunc(h.serveAuth) }

// Ticket is GET|POST /ws_ticket with a bearer token → {"ticket","expires","url"}.
// The handler serves concurrent requests; Ticket may be called from any
// goroutine.
func (h *Handlers) Ticket() http.Handler { return http.HandlerFunc(h.serveTicket) }

type loginRequest struct {
	User *string `json:"user"`
	Pwd  *string `json:"pwd"`
}

type loginResponse struct {
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

type ticketResponse struct {
	Ticket  string `json:"ticket"`
	Expires int64  `json:"expires"`
	URL     string `json:"url"`
}

func (h *Handlers) serveAuth(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Users == nil {
		WriteError(w, http.StatusNotFound, "no logins on this server")
		return
	}
	if r.Method != http.MethodPost {
		h.loginsBadRequest.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed, use POST")
		return
	}
	req, status, msg := decodeLogin(w, r, h.cfg.MaxBodyBytes)
	if status != 0 {
		h.loginsBadRequest.Add(1)
		WriteError(w, status, msg)
		return
	}
	user, pwd, addr := *req.User, *req.Pwd, h.cfg.ClientAddr(r)
	if len(pwd) > MaxPasswordBytes {
		h.loginsBadRequest.Add(1)
		WriteError(w, http.StatusBadRequest, "password longer than 72 bytes")
		return
	}
	if wait := h.throttle.Attempt(user, addr); wait > 0 {
		h.loginsThrottled.Add(1)
		h.cfg.Logger.Debug("login throttled", "addr", addr, "retry_after", wait)
		w.Header().Set("Retry-After", RetryAfter(wait))
		WriteError(w, http.StatusTooManyRequests, "too many failed logins, retry later")
		return
	}
	if err := h.cfg.Users.Verify(user, pwd); err != nil {
		h.loginsFailed.Add(1)
		// The user name is not logged: people type passwords into it.
		h.cfg.Logger.Info("login failed", "addr", addr)
		WriteError(w, http.StatusUnauthorized, "wrong user or password")
		return
	}
	h.throttle.Succeeded(user, addr)
	token, expires, err := h.cfg.Tokens.Sign(user)
	if err != nil {
		h.cfg.Logger.Error("cannot sign token", "err", err)
		WriteError(w, http.StatusInternalServerError, "cannot issue token")
		return
	}
	h.loginsOK.Add(1)
	h.cfg.Logger.Info("login", "user", user, "addr", addr)
	writeJSON(w, http.StatusOK, loginResponse{Token: token, Expires: expires.Unix()})
}

// decodeLogin reads one JSON object with exactly the fields user and pwd.
// A non-zero status is the answer to send with msg.
func decodeLogin(w http.ResponseWriter, r *http.Request, limit int64) (req loginRequest, status int, msg string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil {
		// Exactly one value: anything after it but space is malformed.
		if err = dec.Decode(&struct{}{}); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("trailing data")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return req, http.StatusRequestEntityTooLarge, "body larger than " + strconv.FormatInt(limit, 10) + " bytes"
	case err != nil:
		return req, http.StatusBadRequest, `malformed body, want {"user":"…","pwd":"…"}`
	case req.User == nil || *req.User == "":
		return req, http.StatusBadRequest, "missing field: user"
	case req.Pwd == nil:
		return req, http.StatusBadRequest, "missing field: pwd"
	}
	return req, 0, ""
}

// Values of WWW-Authenticate (RFC 6750 section 3).
const (
	challengeMissing = `Bearer realm="turnstile"`
	challengeInvalid = `Bearer realm="turnstile", error="invalid_token"`
)

func (h *Handlers) serveTicket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.ticketsBadRequest.Add(1)
		w.Header().Set("Allow", "GET, POST")
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed, use GET or POST")
		return
	}
	addr := h.cfg.ClientAddr(r)
	authz := r.Header.Get("Authorization")
	if authz == "" {
		h.ticketsRefused.Add(1)
		w.Header().Set("WWW-Authenticate", challengeMissing)
		WriteError(w, http.StatusUnauthorized, "missing bearer token")
		return
	}
	scheme, token, _ := strings.Cut(authz, " ")
	token = strings.TrimLeft(token, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		h.ticketsRefused.Add(1)
		w.Header().Set("WWW-Authenticate", challengeInvalid)
		WriteError(w, http.StatusUnauthorized, "malformed Authorization header, want Bearer <token>")
		return
	}
	claims, err := h.cfg.Tokens.Verify(token)
	if err != nil {
		h.ticketsRefused.Add(1)
		h.cfg.Logger.Debug("ticket refused", "addr", addr, "reason", tokenFailure(err))
		w.Header().Set("WWW-Authenticate", challengeInvalid)
		WriteError(w, http.StatusUnauthorized, "invalid or expired token")
		return
	}
	now := h.cfg.Now()
	if !claims.Expires.After(now) {
		// Verify already refuses exp <= now (exp is exact); a ticket for a
		// session that has ended could never be redeemed: belt and braces.
		h.ticketsRefused.Add(1)
		w.Header().Set("WWW-Authenticate", challengeInvalid)
		WriteError(w, http.StatusUnauthorized, "invalid or expired token")
		return
	}
	if wait := h.quota.take(claims.Subject, now); wait > 0 {
		h.ticketsOverQuota.Add(1)
		h.cfg.Logger.Debug("ticket quota reached", "user", claims.Subject, "addr", addr, "retry_after", wait)
		w.Header().Set("Retry-After", RetryAfter(wait))
		WriteError(w, http.StatusTooManyRequests, "too many tickets for this user: at most "+
			strconv.Itoa(h.cfg.MaxTicketsPerUser)+" per "+h.cfg.TicketTTL.String()+", retry later")
		return
	}
	text, err := h.issue(ticket.Claims{
		Subject:        claims.Subject,
		SessionExpires: claims.Expires,
		Channels:       claims.Channels,
		RemoteAddr:     addr,
		Origin:         r.Header.Get("Origin"),
	}, now)
	if err != nil {
		h.quota.refund(claims.Subject)
		h.ticketFailures.Add(1)
		status, msg := http.StatusInternalServerError, "cannot issue ticket"
		switch {
		case errors.Is(err, ticket.ErrFull):
			status, msg = http.StatusServiceUnavailable, "ticket store full, retry later"
		case errors.Is(err, ticket.ErrUnavailable):
			status, msg = http.StatusServiceUnavailable, "ticket store unavailable, retry later"
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		h.cfg.Logger.Warn("cannot issue ticket", "err", err)
		WriteError(w, status, msg)
		return
	}
	// A ticket never outlives its session (ticket.Map caps it; the engine
	// ends the connection then anyway): say so rather than now+TTL.
	expires := now.Add(h.cfg.TicketTTL)
	if claims.Expires.Before(expires) {
		expires = claims.Expires
	}
	h.ticketsIssued.Add(1)
	writeJSON(w, http.StatusOK, ticketResponse{
		Ticket:  text,
		Expires: expires.Unix(),
		URL:     h.wsURL(r) + "ticket=" + text,
	})
}

// tokenFailure names why a token was refused, for logs: jwt's messages can
// quote claim values, and nothing of a token belongs in a log.
func tokenFailure(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrTokenTooLarge, "too large"},
		{ErrNoKID, "no kid"},
		{ErrUnknownKID, "unknown kid"},
		{ErrWrongAlg, "alg does not match the key"},
		{ErrCritHeader, "crit header"},
		{ErrNoUser, "no user claim"},
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not yet valid"},
		{jwt.ErrTokenUsedBeforeIssued, "issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenRequiredClaimMissing, "missing claim"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}

// wsURL is the configured WebSocket URL or one derived from the request's
// host, ending in "?" ready for the query.
func (h *Handlers) wsURL(r *http.Request) string {
	if h.wsBase != "" {
		return h.wsBase
	}
	host := r.Host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		// HTTP/1.0 without Host: the address the request came in on.
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, _, _ = net.SplitHostPort(la.String())
		}
	}
	return "ws://" + net.JoinHostPort(host, h.cfg.WSPort) + h.cfg.WSPath + "?"
}

// remoteHost is the IP of the TCP peer.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RetryAfter is d in whole seconds, rounded up, at least 1: the value of a
// Retry-After header. Safe from any goroutine.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// writeJSON answers with v. Every answer of these handlers may carry a token
// or ticket, or a refusal that must not be cached in its place: no-store.
func writeJSON(w http.ResponseWriter, status int, v any) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

// WriteError answers {"error": msg} with status, never cached: the error
// body of every endpoint the server's HTTP side answers. Safe from any
// goroutine (for distinct w).
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JWKS defaults.
const (
	// DefaultJWKSRefresh is how often the set is fetched in the background.
	DefaultJWKSRefresh = 5 * time.Minute
	// DefaultJWKSMinRefetch is the least time between two fetches that
	// unknown kids trigger: a flood of random kids is one fetch per period.
	DefaultJWKSMinRefetch = 5 * time.Second
	// DefaultJWKSTimeout bounds one fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// MaxJWKSBytes is the largest JWK Set body read.
	MaxJWKSBytes = 1 << 20
	// jwksRetry is the background retry period after a failed fetch.
	jwksRetry = 30 * time.Second
)

// JWKSConfig configures a JWKS.
type JWKSConfig struct {
	// URL of the JWK Set: https://, or http:// to a loopback host.
	URL string
	// Refresh is the background refresh period; default DefaultJWKSRefresh.
	Refresh time.Duration
	// MinRefetch is the least time between fetches for unknown kids;
	// default DefaultJWKSMinRefetch.
	MinRefetch time.Duration
	// Timeout bounds one fetch; default DefaultJWKSTimeout.
	Timeout time.Duration
	// Client makes the requests; default a client that follows redirects
	// only to URLs that pass the same scheme rule.
	Client *http.Client
	// Logger gets a line per failed fetch (warn) and per changed set (info).
	Logger *slog.Logger
}

// JWKS is a JSON Web Key Set fetched from an identity provider, cached, and
// refreshed in the background and on demand. Key lookups by kid are lock-
// and allocation-free; a kid the set does not hold triggers at most one
// fetch per MinRefetch, shared by every caller, and a failed fetch keeps the
// keys already cached. Every method is safe from any goroutine.
//
// Why not github.com/MicahParks/keyfunc/v3 (jwkset v0.11.4): its unknown-kid
// refetch runs in the caller behind rate.Limiter.Wait, whose deadline also
// bounds the fetch, so a flood either queues requests for seconds or gives
// the fetch too little time; the algorithm is pinned only by the JWK's
// optional "alg"; a token without kid is tried against every key; lookups
// copy each JWK under a shared RWMutex. Each needed a wrapper, leaving only
// the JWK parsing, which is jwk.go.
type JWKS struct {
	cfg JWKSConfig
	set atomic.Pointer[map[string]verifyKey]

	mu        sync.Mutex
	ctx       context.Context // from Run; nil before it: no fetch
	inflight  chan struct{}   // closed when the running fetch ends; nil if none
	lastStart time.Time
	deferred  bool // a refetch is scheduled at lastStart+MinRefetch

	fetches, failures atomic.Uint64
	lastFailed        atomic.Bool // the last fetch kept the old set
}

// JWKSStats are a JWKS's counters.
type JWKSStats struct {
	Fetches  uint64 // requests sent to the provider
	Failures uint64 // of those, the ones that kept the old set
	Keys     int    // keys cached now
}

// NewJWKS checks cfg and returns a JWKS with no keys; Run fetches them.
func NewJWKS(cfg JWKSConfig) (*JWKS, error) {
	if err := checkJWKSURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultJWKSRefresh
	}
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultJWKSMinRefetch
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultJWKSTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(req.URL.String())
		}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	j := &JWKS{cfg: cfg}
	j.set.Store(&map[string]verifyKey{})
	return j, nil
}

// checkJWKSURL allows https:// anywhere and http:// only to a loopback
// host: keys fetched in the clear could be swapped on the way.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w (got %q)", ErrBadJWKSURL, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
			return nil
		}
	}
	return fmt.Errorf("%w (got %q)", ErrBadJWKSURL, raw)
}

// Run fetches the set at once, then every Refresh (every 30 s while
// fetches fail), until ctx ends; unknown-kid refetches happen only while it
// runs. Call it once, on its own goroutine.
func (j *JWKS) Run(ctx context.Context) {
	j.mu.Lock()
	j.ctx = ctx
	j.mu.Unlock()
	for {
		done := j.refetch(true)
		wait := j.cfg.Refresh
		select {
		case <-done:
			if j.failedLast() {
				wait = min(wait, jwksRetry)
			}
		case <-ctx.Done():
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// failedLast says whether the last fetch kept the old set.
func (j *JWKS) failedLast() bool { return j.lastFailed.Load() }

// key returns the key for kid. A kid not in the set starts a refetch
// unless one started within MinRefetch, and waits for a refetch that is
// running (at most Timeout); one that is rate-limited answers at once.
func (j *JWKS) key(kid string) (verifyKey, bool) {
	if k, ok := (*j.set.Load())[kid]; ok {
		return k, true
	}
	done := j.refetch(false)
	if done == nil {
		return verifyKey{}, false
	}
	t := time.NewTimer(j.cfg.Timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	k, ok := (*j.set.Load())[kid]
	return k, ok
}

// refetch starts a fetch and returns a channel closed when it ends, or
// joins the one running. Unless force, a fetch within MinRefetch of the
// last start is not started: refetch schedules one for then (once) and
// returns nil.
func (j *JWKS) refetch(force bool) <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ctx == nil || j.ctx.Err() != nil { // before Run, or after it ended
		return nil
	}
	if j.inflight != nil {
		return j.inflight
	}
	if wait := j.cfg.MinRefetch - time.Since(j.lastStart); !force && wait > 0 {
		if !j.deferred {
			j.deferred = true
			time.AfterFunc(wait, func() {
				j.mu.Lock()
				j.deferred = false
				j.mu.Unlock()
				j.refetch(false)
			})
		}
		return nil
	}
	j.lastStart = time.Now()
	done := make(chan struct{})
	j.inflight = done
	go j.fetch(j.ctx, done)
	return done
}

func (j *JWKS) fetch(ctx context.Context, done chan struct{}) {
	defer func() {
		j.mu.Lock()
		j.inflight = nil
		j.mu.Unlock()
		close(done)
	}()
	j.fetches.Add(1)
	set, skipped, err := j.get(ctx)
	if err != nil {
		j.failures.Add(1)
		j.lastFailed.Store(true)
		j.cfg.Logger.Warn("JWKS fetch failed, keeping the cached keys", "url", j.cfg.URL, "err", err, "cached", len(*j.set.Load()))
		return
	}
	j.lastFailed.Store(false)
	old := j.set.Swap(&set)
	if !sameKids(*old, set) {
		j.cfg.Logger.Info("JWKS keys changed", "url", j.cfg.URL, "keys", len(set), "skipped", skipped)
	}
}

func sameKids(a, b map[string]verifyKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid := range a {
		if _, ok := b[kid]; !ok {
			return false
		}
	}
	return true
}

// get fetches and parses the set. Keys without kid, of another kind or
// algorithm are skipped (counted); a kid listed twice is dropped, since a
// token naming it would be ambiguous; a set left without a key is an error.
func (j *JWKS) get(ctx context.Context) (map[string]verifyKey, int, error) {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.URL, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > MaxJWKSBytes {
		return nil, 0, fmt.Errorf("body larger than %d bytes", MaxJWKSBytes)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("not a JWK Set: %w", err)
	}
	set := make(map[string]verifyKey, len(doc.Keys))
	dup := map[string]bool{}
	skipped := 0
	for _, k := range doc.Keys {
		if k.Kid == "" {
			skipped++
			continue
		}
		vk, err := k.verifyKey()
		if err != nil {
			if !errors.Is(err, errSkip) {
				j.cfg.Logger.Warn("JWKS key ignored", "url", j.cfg.URL, "kid", k.Kid, "err", err)
			}
			skipped++
			continue
		}
		if _, ok := set[k.Kid]; ok || dup[k.Kid] {
			dup[k.Kid] = true
			delete(set, k.Kid)
			continue
		}
		set[k.Kid] = vk
	}
	for kid := range dup {
		j.cfg.Logger.Warn("JWKS kid listed twice, ignored", "url", j.cfg.URL, "kid", kid)
	}
	if len(set) == 0 {
		return nil, skipped, ErrNoUsableKeys
	}
	return set, skipped, nil
}

// Stats returns the counters. Safe from any goroutine.
func (j *JWKS) Stats() JWKSStats {
	return JWKSStats{Fetches: j.fetches.Load(), Failures: j.failures.Load(), Keys: len(*j.set.Load())}
}

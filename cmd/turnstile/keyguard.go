package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/turnstile-push/turnstile/auth"
	"github.com/turnstile-push/turnstile/internal/ratelog"
)

// keyGuard protects the endpoints that take the publish key (/publish and
// /disconnect): it counts the requests their handler
// answers 401, logs them (rate-limited, never the key) and throttles the
// client address that sends them.
//
// A throttled address gets 429 with Retry-After for every request to these
// endpoints until its bucket drains, even with the correct key. Letting a
// correct key through would tell a guesser which guess was right (200
// against 429), so the throttle would slow nothing down. The price is that a
// backend sharing an address with a client that sends a wrong key (a stale
// instance after a key rotation) is refused with it: the log line and
// turnstile_publish_auth_failures_total show it, and service returns one
// -publish-auth-interval after the wrong key stops.
//
// The guard sits outside the handler and reads only its status, so the
// engine stays free of auth and any handler that answers 401 for a wrong key
// is covered by wrapping it.
type keyGuard struct {
	limit      *auth.AddrLimiter
	clientAddr func(*http.Request) string
	log        *slog.Logger
	now        func() time.Time

	failures, throttled atomic.Uint64
	// Logging: at most one line per keyGuardLogEvery, saying how many
	// failures it stands for.
	logLimit ratelog.Limiter
}

const keyGuardLogEvery = 10 * time.Second

func newKeyGuard(burst int, interval time.Duration, clientAddr func(*http.Request) string, log *slog.Logger) *keyGuard {
	if clientAddr == nil {
		clientAddr = peerHost
	}
	return &keyGuard{
		limit:      auth.NewAddrLimiter(burst, interval, 0, nil),
		clientAddr: clientAddr,
		log:        log,
		now:        time.Now,
		logLimit:   ratelog.Limiter{Every: keyGuardLogEvery},
	}
}

// wrap returns next behind the guard. The handler is safe for concurrent
// requests if next is.
func (g *keyGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := g.clientAddr(r)
		if wait := g.limit.Blocked(addr); wait > 0 {
			g.throttled.Add(1)
			w.Header().Set("Retry-After", auth.RetryAfter(wait))
			auth.WriteError(w, http.StatusTooManyRequests, "too many requests with a wrong key from this address, retry later")
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized {
			g.failures.Add(1)
			g.limit.Failed(addr)
			g.report(addr, r.URL.Path)
		}
	})
}

// report logs a refused key, at most once per keyGuardLogEvery whatever the
// rate: a guesser sets the rate, and must not fill the disk.
func (g *keyGuard) report(addr, path string) {
	if ok, suppressed := g.logLimit.Allow(g.now()); ok {
		g.log.Warn("wrong publish key", "addr", addr, "path", path, "failures_since_last_line", suppressed+1)
	}
}

// peerHost is the IP of the TCP peer.
func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

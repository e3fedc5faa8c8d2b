package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth"
)

// keyedHandler answers 401 unless the request carries key, like /publish.
func keyedHandler(key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			auth.WriteError(w, http.StatusUnauthorized, "missing or wrong publish key")
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func guardedRequest(h http.Handler, path, from, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, nil)
	r.RemoteAddr = from + ":5555"
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// One guard covers every publish-key endpoint with one budget per address.
func TestKeyGuardSharedAcrossEndpoints(t *testing.T) {
	var logs bytes.Buffer
	g := newKeyGuard(4, time.Minute, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	publish, disconnect := g.wrap(keyedHandler("k")), g.wrap(keyedHandler("k"))
	for i := range 4 {
		h := publish
		if i%2 == 1 {
			h = disconnect
		}
		if w := guardedRequest(h, "/x", "192.0.2.1", "bad"); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, w.Code)
		}
	}
	for _, h := range []http.Handler{publish, disconnect} {
		w := guardedRequest(h, "/x", "192.0.2.1", "k")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
			t.Fatalf("the right key from a throttled address: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
	}
	if w := guardedRequest(publish, "/x", "192.0.2.2", "k"); w.Code != http.StatusOK {
		t.Fatalf("another address: %d", w.Code)
	}
	if g.failures.Load() != 4 || g.throttled.Load() != 2 {
		t.Fatalf("failures %d throttled %d, want 4 and 2", g.failures.Load(), g.throttled.Load())
	}
	if n := strings.Count(logs.String(), "wrong publish key"); n != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", n, logs.String())
	}
}

// Successes cost nothing, however many are in flight: a busy backend with the
// right key is never throttled.
func TestKeyGuardSuccessesAreFree(t *testing.T) {
	g := newKeyGuard(1, time.Hour, nil, slog.New(slog.DiscardHandler))
	h := g.wrap(keyedHandler("k"))
	for i := range 1000 {
		if w := guardedRequest(h, "/publish", "192.0.2.1", "k"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
}

// The log stays bounded whatever the rate: one line per keyGuardLogEvery,
// carrying the count it stands for.
func TestKeyGuardLogIsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	g := newKeyGuard(1000000, time.Millisecond, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Unix(1e9, 0)
	g.now = func() time.Time { return now }
	h := g.wrap(keyedHandler("k"))
	for range 500 {
		guardedRequest(h, "/publish", "192.0.2.1", "bad")
	}
	now = now.Add(keyGuardLogEvery)
	guardedRequest(h, "/publish", "192.0.2.1", "bad")
	out := logs.String()
	if n := strings.Count(out, "wrong publish key"); n != 2 {
		t.Fatalf("%d lines for 501 failures over %v, want 2:\n%s", n, keyGuardLogEvery, out)
	}
	if !strings.Contains(out, "failures_since_last_line=500") {
		t.Fatalf("the second line does not count the 500 suppressed failures:\n%s", out)
	}
}

func TestRefuseWhileDraining(t *testing.T) {
	s := &server{}
	h := s.refuseWhileDraining(keyedHandler("k"))
	if w := guardedRequest(h, "/publish", "192.0.2.1", "k"); w.Code != http.StatusOK {
		t.Fatalf("serving: %d", w.Code)
	}
	s.draining.Store(true)
	w := guardedRequest(h, "/publish", "192.0.2.1", "k")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
		w.Header().Get("Connection") != "close" || !strings.Contains(w.Body.String(), `"error":"server is shutting down`) {
		t.Fatalf("draining: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

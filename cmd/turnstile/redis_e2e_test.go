package main

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/internal/redistest"
)

const (
	testTicketKey = "e2e ticket key shared by the nodes: 32+ bytes"
	testJWTSecret = "e2e jwt secret shared by the nodes: 32+ bytes"
)

// startNodes starts n turnstile binaries sharing one Redis, one JWT key
// and one ticket key.
func startNodes(t *testing.T, redis *redistest.Server, n int, args ...string) []*testServer {
	t.Helper()
	var nodes []*testServer
	for range n {
		nodes = append(nodes, startBinary(t, append([]string{"-redis", redis.URL(),
			"-ticket-key", testTicketKey, "-jwt-secret", testJWTSecret}, args...)...))
	}
	return nodes
}

// A ticket from any node admits exactly one connection among three real
// nodes, each ticket tried at the same moment on all three.
func TestRedisNodesAdmitEachTicketOnce(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	token := nodes[0].Login(t, "maggie", "secret")
	const tickets = 300
	urls := make([]string, tickets)
	for i := range urls {
		tk, url := nodes[i%3].Ticket(t, token)
		if len(tk) != 52 {
			t.Fatalf("ticket of %d characters, want a 52-character sealed ticket", len(tk))
		}
		urls[i] = url
	}
	var admitted, refused atomic.Int64
	for i, url := range urls {
		_, rest, _ := strings.Cut(url, "?")
		var wg sync.WaitGroup
		wins := atomic.Int32{}
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch code := dialStatus(t, n.WS+"?"+rest); code {
				case 101:
					admitted.Add(1)
					wins.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				default:
					t.Errorf("ticket %d: status %d", i, code)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("ticket %d admitted %d times across the nodes", i, wins.Load())
		}
	}
	if admitted.Load() != tickets || refused.Load() != 2*tickets {
		t.Fatalf("101: %d, 401: %d; want %d and %d", admitted.Load(), refused.Load(), tickets, 2*tickets)
	}
}

// Redis down: /ws_ticket answers 503 with Retry-After, /readyz 503, open
// connections stay open; within 5 s of Redis returning it all works again.
func TestRedisNodeFailsClosedAndRecovers(t *testing.T) {
	redis := redistest.Start(t)
	node := startNodes(t, redis, 1)[0]
	token := node.Login(t, "maggie", "secret")
	_, url := node.Ticket(t, token)
	open := dial(t, url)
	if w := open.read(t); w["type"] != "welcome" {
		t.Fatalf("welcome = %v", w)
	}
	_, spare := node.Ticket(t, token) // issued while Redis is up
	redis.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for code := 0; code != http.StatusServiceUnavailable; {
		if code = node.do(t, "GET", "/readyz", "", "", nil); time.Now().After(deadline) {
			t.Fatalf("/readyz %d with Redis down, want 503", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := node.call(t, "POST", "/ws_ticket", token, "", ""); a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" {
		t.Fatalf("/ws_ticket with Redis down: %d Retry-After %q, want 503 with Retry-After", a.code, a.hdr.Get("Retry-After"))
	}
	if code := dialStatus(t, spare); code != http.StatusServiceUnavailable {
		t.Fatalf("upgrade with Redis down: %d, want 503", code)
	}
	if code := node.do(t, "GET", "/healthz", "", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz %d: the process is up", code)
	}
	redis.Restart()
	back := time.Now()
	for node.do(t, "GET", "/readyz", "", "", nil) != http.StatusOK {
		if time.Since(back) > 5*time.Second {
			t.Fatal("/readyz not 200 within 5 s of Redis returning")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		var out struct{ URL string }
		if node.do(t, "POST", "/ws_ticket", token, "", &out) == http.StatusOK && dialStatus(t, out.URL) == 101 {
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatal("tickets and upgrades not back within 5 s of Redis returning")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The connection opened before the outage is still there. A publish
	// may still be refused (503, Retry-After) while the broker's own
	// commands come back; within the same 5 s it goes through.
	for {
		a := node.call(t, "POST", "/publish", node.PublishKey, "", `{"user":"maggie","data":"still here"}`)
		if a.code == http.StatusOK {
			break
		}
		if a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" || time.Since(back) > 5*time.Second {
			t.Fatalf("publish %d s after Redis returned: %d %s (Retry-After %q)", int(time.Since(back).Seconds()), a.code, a.body, a.hdr.Get("Retry-After"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := open.read(t); m["type"] != "message" {
		t.Fatalf("old connection got %v", m)
	}
}

func TestRedisFlagsRefusedWithoutKey(t *testing.T) {
	for _, args := range [][]string{
		{"-redis", "redis://127.0.0.1:1"},                              // no -ticket-key
		{"-redis", "http://127.0.0.1:1", "-ticket-key", testTicketKey}, // wrong scheme
		{"-redis", "redis://127.0.0.1:1", "-ticket-key", "short"},      // short key
		{"-ticket-key", testTicketKey},                                 // key without -redis
	} {
		_, err := parseConfig(append([]string{"-dev"}, args...), func(string) string { return "" }, nil)
		if err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	c, err := parseConfig([]string{"-dev", "-redis", "rediss://u:p@h:6380/2,redis://h2:6379"}, func(k string) string {
		if k == "TURNSTILE_TICKET_KEY" {
			return testTicketKey
		}
		return ""
	}, nil)
	if err != nil || c.TicketKey != testTicketKey {
		t.Fatalf("valid -redis list with the key from the environment: %v", err)
	}
	opts, _ := redisOptions(c.Redis)
	if len(opts) != 2 || opts[0].TLSConfig == nil || opts[0].Username != "u" || opts[0].Password != "p" || opts[0].SelectDB != 2 {
		t.Fatalf("parsed %+v", opts)
	}
}

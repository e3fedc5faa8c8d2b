package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// withNoFile runs the binary with RLIMIT_NOFILE set to n (soft and hard).
func withNoFile(n string) []string {
	return []string{"sh", "-c", "ulimit -n " + n + " && exec \"$0\" \"$@\""}
}

func TestFDBudgetSplitsTheLimit(t *testing.T) {
	for _, tc := range []struct{ limit, loops int }{{256, 2}, {1024, 2}, {20000, 2}, {20000, 8}, {1 << 20, 4}} {
		b, err := newFDBudget(tc.limit, tc.loops)
		if err != nil {
			t.Fatalf("limit %d: %v", tc.limit, err)
		}
		if b.WS+b.HTTP+b.Headroom != tc.limit || b.WS <= 0 || b.HTTP < 16 || b.HTTP > 512 || b.Headroom < 4*tc.loops+tc.loops {
			t.Errorf("limit %d loops %d: budget %+v does not keep headroom", tc.limit, tc.loops, b)
		}
	}
	if _, err := newFDBudget(64, 2); err == nil || !strings.Contains(err.Error(), "ulimit -n") {
		t.Errorf("a limit of 64 must be refused with advice, got %v", err)
	}
}

// rawConns opens n TCP connections to addr that send nothing. It reports
// how many the server had closed after wait (refused at once).
func rawConns(t *testing.T, addr string, n int, wait time.Duration) ([]net.Conn, int) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s after %d conns: %v", addr, len(conns), err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	closed := 0
	time.Sleep(wait)
	buf := make([]byte, 512)
	for _, c := range conns {
		// A refused connection has its 503 and EOF queued by now.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue // the 503 of a refusal; its EOF follows
			}
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				closed++
			}
			break
		}
	}
	return conns, closed
}

func (s *testServer) readyz(t *testing.T) (int, string) {
	t.Helper()
	a := s.call(t, "GET", "/readyz", "", "", "")
	return a.code, string(a.body)
}

// Running out of file descriptors is transient: under `ulimit -n 256`, 300
// silent TCP connections to the WebSocket port (plus silent HTTP ones) are
// refused past the budget, upgraded clients keep working, /readyz says
// fd_exhausted while it lasts, the warning is logged a bounded number of
// times, and the port accepts again once the connections close. On a
// server without the budget, gnet's accept meets EMFILE and the engine
// shuts down, dropping every upgraded client.
func TestEndToEndFDExhaustionIsTransient(t *testing.T) {
	s := startCommand(t, withNoFile("256"), "-handshake-timeout", "60s", "-loops", "2")
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(s.WS, "ws://"), "/ws")
	httpAddr := strings.TrimPrefix(s.HTTP, "http://")
	a := connect(t, s, "maggie", "secret")
	b := connect(t, s, "maggie", "secret")

	httpConns, _ := rawConns(t, httpAddr, 60, 10*time.Millisecond)
	wsConns, refused := rawConns(t, wsAddr, 300, 2*time.Second)
	if refused == 0 {
		t.Fatalf("300 silent connections under ulimit -n 256: none refused")
	}
	t.Logf("%d of 300 silent WebSocket connections refused at once", refused)
	for _, c := range httpConns {
		c.Close()
	}

	if code, body := s.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "fd_exhausted") {
		t.Fatalf("/readyz at the fd budget: %d %s, want 503 fd_exhausted", code, body)
	}
	if n := s.Publish(t, `{"user":"maggie","data":"still here"}`); n != 2 {
		t.Fatalf("publish at the fd budget reached %d connections, want the 2 upgraded ones", n)
	}
	for _, c := range []*wsClient{a, b} {
		if m := c.read(t); m["data"] != "still here" {
			t.Fatalf("upgraded client got %v", m)
		}
	}
	if v := s.metric(t, `turnstile_handshake_rejections_total{reason="fd_budget"}`); v < float64(refused) {
		t.Errorf("fd_budget rejections = %v, want >= %d", v, refused)
	}

	for _, c := range wsConns {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := s.readyz(t)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after the connections closed: %d %s, want 200", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := connect(t, s, "maggie", "secret")
	if n := s.Publish(t, `{"user":"maggie","data":"again"}`); n != 3 {
		t.Fatalf("publish after recovery reached %d, want 3", n)
	}
	if m := c.read(t); m["data"] != "again" {
		t.Fatalf("new client got %v", m)
	}
	logs := s.Logs()
	if n := strings.Count(logs, "file descriptor budget reached"); n == 0 || n > 10 {
		t.Errorf("fd budget warning logged %d times, want between 1 and 10 (rate-limited)", n)
	}
	if strings.Contains(logs, "engine is being shutdown") || strings.Contains(logs, "too many open files") {
		t.Errorf("the listener met EMFILE:\n%s", logs)
	}
}

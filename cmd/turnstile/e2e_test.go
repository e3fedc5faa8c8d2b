package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/crypto/bcrypt"
)

// wsClient is a minimal client over gobwas/ws for end-to-end tests.
type wsClient struct {
	conn net.Conn
	rw   io.ReadWriter // reads first what the dialer read ahead (the welcome may share the 101's packet)
}

type readAhead struct {
	io.Reader
	io.Writer
}

func dial(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", redact(url), err)
	}
	c := &wsClient{conn: conn, rw: conn}
	if br != nil {
		c.rw = readAhead{io.MultiReader(br, conn), conn}
	}
	t.Cleanup(func() { conn.Close() })
	return c
}

// dialStatus attempts an upgrade and returns the HTTP status of a refusal
// (or 101 on success).
func dialStatus(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, url)
	if err == nil {
		conn.Close()
		return 101
	}
	var status ws.StatusError
	if errors.As(err, &status) {
		return int(status)
	}
	t.Fatalf("dial: %v", err)
	return 0
}

// read returns the next data message as a JSON object.
func (c *wsClient) read(t *testing.T) map[string]any {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, op, err := wsutil.ReadServerData(c.rw)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if op != ws.OpText {
		t.Fatalf("opcode %v, want text", op)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %q", data)
	}
	return m
}

// readClose reads until the server's close frame and returns its code.
func (c *wsClient) readClose(t *testing.T) ws.StatusCode {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := wsutil.ReadServerData(c.rw)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return closed.Code
		}
		if err != nil {
			t.Fatalf("want a close frame, got %v", err)
		}
	}
}

func redact(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?…"
	}
	return url
}

// connect logs in as user, takes a ticket, connects and checks the welcome.
func connect(t *testing.T, s *testServer, user, pwd string) *wsClient {
	t.Helper()
	_, url := s.Ticket(t, s.Login(t, user, pwd))
	c := dial(t, url)
	welcome := c.read(t)
	if welcome["type"] != "welcome" || welcome["user"] != user || welcome["conn"] == "" {
		t.Fatalf("welcome = %v", welcome)
	}
	return c
}

func TestEndToEndPublishToUser(t *testing.T) {
	s := startBinary(t)
	tkt, url := s.Ticket(t, s.Login(t, "maggie", "secret"))
	if !strings.HasPrefix(url, s.WS+"?ticket=") || !strings.HasSuffix(url, tkt) {
		t.Fatalf("ticket url %q does not point at %s", redact(url), s.WS)
	}
	c := dial(t, url)
	if w := c.read(t); w["type"] != "welcome" || w["user"] != "maggie" {
		t.Fatalf("welcome = %v", w)
	}
	if n := s.Publish(t, `{"user":"maggie","data":{"hello":"world"}}`); n != 1 {
		t.Fatalf("recipients %d, want 1", n)
	}
	m := c.read(t)
	data, _ := m["data"].(map[string]any)
	if m["type"] != "message" || data["hello"] != "world" {
		t.Fatalf("message = %v", m)
	}
	if n := s.Publish(t, `{"user":"nobody","data":1}`); n != 0 {
		t.Fatalf("publish to a user with no connection targeted %d", n)
	}
	if strings.Contains(s.Logs(), tkt) {
		t.Fatal("the ticket appears in the server's log")
	}
}

// writeHtpasswd writes a bcrypt htpasswd file where each user's password
// is the user name + "-pw".
func writeHtpasswd(t *testing.T, path string, users ...string) {
	t.Helper()
	var file strings.Builder
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		file.WriteString(u + ":" + string(hash) + "\n")
	}
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEndToEndBroadcastToThreeUsers(t *testing.T) {
	users := []string{"ann", "bob", "cyd"}
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, users...)
	s := startBinary(t, "-users", path)
	var clients []*wsClient
	for _, u := range users {
		clients = append(clients, connect(t, s, u, u+"-pw"))
	}
	if n := s.Publish(t, `{"broadcast":true,"data":"to all"}`); n != len(users) {
		t.Fatalf("broadcast recipients %d, want %d", n, len(users))
	}
	for i, c := range clients {
		if m := c.read(t); m["type"] != "message" || m["data"] != "to all" {
			t.Fatalf("%s got %v", users[i], m)
		}
	}
}

func TestEndToEndRefusals(t *testing.T) {
	s := startBinary(t)
	if code := s.do(t, "POST", "/auth", "", `{"user":"maggie","pwd":"wrong"}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, want 401", code)
	}
	_, url := s.Ticket(t, s.Login(t, "maggie", "secret"))
	if code := dialStatus(t, url); code != 101 {
		t.Fatalf("first use of the ticket: %d, want 101", code)
	}
	if code := dialStatus(t, url); code != http.StatusUnauthorized {
		t.Fatalf("replayed ticket: %d, want 401", code)
	}
	if code := s.do(t, "POST", "/ws_ticket", "not-a-jwt", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("garbage token: %d, want 401", code)
	}
	if code := s.do(t, "POST", "/publish", "wrong-key", `{"broadcast":true,"data":1}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("publish with a wrong key: %d, want 401", code)
	}
}

func TestEndToEndSIGTERMSends1001AndExits0(t *testing.T) {
	s := startBinary(t)
	c := connect(t, s, "maggie", "secret")
	s.Signal(t, syscall.SIGTERM)
	if code := c.readClose(t); code != ws.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	c.conn.Close()
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, s.Logs())
	}
}

func TestEndToEndOperationalEndpoints(t *testing.T) {
	s := startBinary(t)
	connect(t, s, "maggie", "secret")
	for _, path := range []string{"/healthz", "/readyz"} {
		if code := s.do(t, "GET", path, "", "", nil); code != http.StatusOK {
			t.Errorf("%s: %d", path, code)
		}
	}
	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	for _, want := range []string{
		"turnstile_open_connections 1",
		`turnstile_handshakes_total{result="accepted"} 1`,
		`turnstile_tickets_total{event="issued"} 1`,
		`turnstile_tickets_total{event="redeemed"} 1`,
		`turnstile_logins_total{result="ok"} 1`,
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestStartLineWarnsOfOneP: the start line says GOMAXPROCS, and with one
// P a warning says what it costs and what to do; with two, no warning.
func TestStartLineWarnsOfOneP(t *testing.T) {
	for _, procs := range []string{"1", "2"} {
		s := startCommand(t, []string{"env", "GOMAXPROCS=" + procs})
		if logs := s.Logs(); !strings.Contains(logs, `"gomaxprocs":`+procs) {
			t.Fatalf("GOMAXPROCS=%s: the start line does not say gomaxprocs %s:\n%s", procs, procs, logs)
		}
		deadline := time.Now().Add(2 * time.Second)
		for procs == "1" && !strings.Contains(s.Logs(), "GOMAXPROCS is 1") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if warned := strings.Contains(s.Logs(), "GOMAXPROCS is 1"); warned != (procs == "1") {
			t.Fatalf("GOMAXPROCS=%s: warned %v:\n%s", procs, warned, s.Logs())
		}
	}
}

func TestBinaryRefusesBadConfiguration(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no keys outside dev", []string{}, "no signing key"},
		{"short secret", []string{"-jwt-secret", "short", "-publish-key", testPublishKey}, "at least 32"},
		{"unreadable users file", []string{"-dev", "-users", "/nonexistent/htpasswd"}, "/nonexistent/htpasswd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := configFailure(t, tc.args...)
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output %q does not mention %q", out, tc.want)
			}
		})
	}
}

func TestBinaryReportsPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(binaryPath, "-dev", "-http", ln.Addr().String(), "-ws", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("err %v, output %s; want exit 1 naming the port in use", err, out)
	}
}

func TestEndToEndSIGHUPReloadsUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, "ann")
	s := startBinary(t, "-users", path)
	if code := s.do(t, "POST", "/auth", "", `{"user":"dan","pwd":"dan-pw"}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("dan before reload: %d, want 401", code)
	}
	writeHtpasswd(t, path, "ann", "dan")
	s.Signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for s.do(t, "POST", "/auth", "", `{"user":"dan","pwd":"dan-pw"}`, nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("dan cannot log in 10s after SIGHUP\n%s", s.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A broken file keeps the users loaded before it.
	if err := os.WriteFile(path, []byte("ann:{SHA}not-bcrypt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Signal(t, syscall.SIGHUP)
	for !strings.Contains(s.Logs(), "users not reloaded") {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("no log line for the broken reload\n%s", s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := s.Login(t, "ann", "ann-pw"); got == "" {
		t.Fatal("ann lost after a broken reload")
	}
}

// Behind a trusted proxy the login throttle counts the client named by
// X-Forwarded-For: an attacker hammering from one address does not lock out
// a user arriving through the same proxy from another.
func TestEndToEndThrottleBehindTrustedProxy(t *testing.T) {
	s := startBinary(t, "-trusted-proxies", "127.0.0.1")
	login := func(from, pwd string) int {
		req, _ := http.NewRequest("POST", s.HTTP+"/auth", strings.NewReader(`{"user":"maggie","pwd":"`+pwd+`"}`))
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	throttled := false
	for i := 0; i < 30 && !throttled; i++ {
		throttled = login("198.51.100.1", "wrong") == http.StatusTooManyRequests
	}
	if !throttled {
		t.Fatal("30 failures from one client were never throttled")
	}
	if code := login("198.51.100.1", "secret"); code != http.StatusTooManyRequests {
		t.Fatalf("the throttled client logged in: %d", code)
	}
	if code := login("203.0.113.5", "secret"); code != http.StatusOK {
		t.Fatalf("another client behind the same proxy: %d, want 200", code)
	}
}

package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

func TestServerPings(t *testing.T) {
	s, st := startServer(t, Config{PingInterval: 200 * time.Millisecond, IdleTimeout: 5 * time.Second})
	conn, br, _ := connect(t, s, st, "maggie")
	for i := range 2 {
		f := readFrame(t, br)
		if f.op != ws.OpPing {
			t.Fatalf("frame %d: %v, want ping", i, f.op)
		}
		conn.Write(clientFrame(true, ws.OpPong, f.payload))
	}
}

func TestIdleTimeout(t *testing.T) {
	s, st := startServer(t, Config{PingInterval: time.Hour, IdleTimeout: 500 * time.Millisecond})
	conn, br, _ := connect(t, s, st, "maggie")
	f := readFrame(t, br)
	if f.op != ws.OpClose || len(f.payload) < 2 {
		t.Fatalf("got %v %q, want close", f.op, f.payload)
	}
	if code := binary.BigEndian.Uint16(f.payload); code != 1001 || string(f.payload[2:]) != "idle timeout" {
		t.Fatalf("close %d %q, want 1001 \"idle timeout\"", code, f.payload[2:])
	}
	conn.Write(clientFrame(true, ws.OpClose, f.payload[:2])) // the answer ends it at once
	expectEOF(t, br)
}

// When the session the ticket was traded for ends, the connection is
// closed with 1008.
func TestSessionExpiry(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	conn := dial(t, s)
	tk := st.addClaims(ticket.Claims{Subject: "maggie", SessionExpires: time.Now().Add(400 * time.Millisecond)})
	conn.Write([]byte(upgradeRequest("/ws", tk, "")))
	br := bufio.NewReader(conn)
	if resp := readResponse(t, br); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	readFrame(t, br)
	conn.Write(clientFrame(true, ws.OpText, []byte("before")))
	if f := readFrame(t, br); string(f.payload) != "before" {
		t.Fatalf("got %q", f.payload)
	}
	f := readFrame(t, br)
	if f.op != ws.OpClose || binary.BigEndian.Uint16(f.payload) != 1008 || string(f.payload[2:]) != "session expired" {
		t.Fatalf("got %v %q, want close 1008 session expired", f.op, f.payload)
	}
}

// A session that ends centuries from now (past time.Duration's range) must
// not wrap around and end at once.
func TestSessionExpiryFarFuture(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	conn := dial(t, s)
	tk := st.addClaims(ticket.Claims{Subject: "maggie", SessionExpires: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	conn.Write([]byte(upgradeRequest("/ws", tk, "")))
	br := bufio.NewReader(conn)
	if resp := readResponse(t, br); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	readFrame(t, br)
	time.Sleep(3 * s.tick) // several sweeps pass over the connection
	conn.Write(clientFrame(true, ws.OpText, []byte("still here")))
	if f := readFrame(t, br); f.op != ws.OpText || string(f.payload) != "still here" {
		t.Fatalf("got %v %q, want the echo", f.op, f.payload)
	}
}

// A client that keeps talking is not idle.
func TestActivityKeepsConnection(t *testing.T) {
	s, st := startServer(t, Config{Echo: true, PingInterval: time.Hour, IdleTimeout: 600 * time.Millisecond})
	conn, br, _ := connect(t, s, st, "maggie")
	for range 8 {
		time.Sleep(150 * time.Millisecond)
		conn.Write(clientFrame(true, ws.OpPong, nil))
	}
	conn.Write(clientFrame(true, ws.OpText, []byte("alive")))
	if f := readFrame(t, br); string(f.payload) != "alive" {
		t.Fatalf("got %v %q", f.op, f.payload)
	}
}

func TestStopSendsGoingAway(t *testing.T) {
	s, st := startServer(t, Config{})
	conn, br, _ := connect(t, s, st, "maggie")
	half := dial(t, s) // a handshake in progress is simply closed
	half.Write([]byte("GET /ws"))
	if !s.Ready() {
		t.Fatal("not ready before Stop")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	f := readFrame(t, br)
	if f.op != ws.OpClose || binary.BigEndian.Uint16(f.payload) != 1001 || string(f.payload[2:]) != "server shutting down" {
		t.Fatalf("got %v %q, want close 1001", f.op, f.payload)
	}
	if s.Ready() {
		t.Fatal("ready while stopping")
	}
	conn.Write(clientFrame(true, ws.OpClose, closePayload(1001, "")))
	expectEOF(t, br)
	expectEOF(t, half)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Stop")
	}
}

// A handshake that completes once Stop has begun is refused with 503 and
// keeps its ticket: Stop's close pass may already have run on its loop (or
// not know the loop yet), so a 101 now would outlive the drain.
func TestNoAdmissionWhileStopping(t *testing.T) {
	s, st := startServer(t, Config{})
	conn := dial(t, s)
	conn.Write([]byte("GET /ws")) // opened before Stop, completed after
	time.Sleep(50 * time.Millisecond)
	s.stopping.Store(true) // what Stop does first
	tk := st.add("maggie")
	conn.Write([]byte(strings.TrimPrefix(upgradeRequest("/ws", tk, ""), "GET /ws")))
	if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != 503 {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if !st.has(tk) {
		t.Fatal("a ticket refused while stopping was spent")
	}
}

// A client that never answers the close is cut when ctx ends.
func TestStopForcesAfterContext(t *testing.T) {
	s, st := startServer(t, Config{})
	_, br, _ := connect(t, s, st, "maggie")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	expectClose(t, br, 1001)
}

func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Store: newMemStore(), Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		s.Stop(context.Background())
		t.Fatal("Start succeeded on a port in use")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Store: newMemStore(), Path: "ws"},
		{Store: newMemStore(), MaxConns: -1},
		{Store: newMemStore(), Origins: []string{"app.example"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestAddrIsBound(t *testing.T) {
	s, _ := startServer(t, Config{})
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok || a.Port == 0 || !a.IP.IsLoopback() {
		t.Fatalf("Addr = %v", s.Addr())
	}
	_ = bufio.NewReader
}

package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// memStore is a test Store: a map under a mutex.
type memStore struct {
	mu sync.Mutex
	m  map[string]ticket.Claims
	n  int
}

func newMemStore() *memStore { return &memStore{m: make(map[string]ticket.Claims)} }

func (s *memStore) Issue(c ticket.Claims, _ time.Time, _ time.Duration) (ticket.Ticket, error) {
	panic("not used")
}

func (s *memStore) Redeem(text []byte, _ time.Time) (ticket.Claims, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[string(text)]
	if !ok {
		return ticket.Claims{}, ticket.ErrInvalid
	}
	delete(s.m, string(text))
	return c, nil
}

// add stores a fresh ticket for user and returns its text.
func (s *memStore) add(user string) string { return s.addClaims(ticket.Claims{Subject: user}) }

// addClaims stores a fresh ticket carrying c and returns its text.
func (s *memStore) addClaims(c ticket.Claims) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	t := fmt.Sprintf("%022d", s.n)
	t = strings.Repeat("T", ticket.TextLen-len(strings.TrimLeft(t, "0"))) + strings.TrimLeft(t, "0")
	s.m[t] = c
	return t
}

func (s *memStore) has(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[text]
	return ok
}

const testTimeout = 10 * time.Second

// startServer starts a server on 127.0.0.1:0 with two loops; it stops at
// the end of the test.
func startServer(t testing.TB, cfg Config) (*Server, *memStore) {
	t.Helper()
	st, _ := cfg.Store.(*memStore)
	if cfg.Store == nil {
		st = newMemStore()
		cfg.Store = st
	}
	cfg.Addr = "127.0.0.1:0"
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s, st
}

func dial(t testing.TB, s *Server) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// upgradeRequest is a valid upgrade request for path?ticket=tk plus extra
// header lines (each ending in \r\n).
func upgradeRequest(path, tk, extra string) string {
	uri := path
	if tk != "" {
		uri += "?ticket=" + tk
	}
	return "GET " + uri + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// readResponse reads an HTTP response head and body.
func readResponse(t testing.TB, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp
}

// connect upgrades with a fresh ticket for user and reads the welcome.
func connect(t testing.TB, s *Server, st *memStore, user string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	conn := dial(t, s)
	if _, err := io.WriteString(conn, upgradeRequest(s.cfg.Path, st.add(user), "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp := readResponse(t, br)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	f := readFrame(t, br)
	if f.op != ws.OpText || !strings.Contains(string(f.payload), `"type":"welcome"`) {
		t.Fatalf("first frame %v %q, want welcome", f.op, f.payload)
	}
	return conn, br, string(f.payload)
}

type frame struct {
	fin     bool
	op      ws.OpCode
	payload []byte
}

// clientFrame encodes a masked client frame.
func clientFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	var out []byte
	switch n := len(payload); {
	case n < 126:
		out = append(out, b0, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	start := len(out)
	out = append(out, payload...)
	ws.Cipher(out[start:], mask, 0)
	return out
}

func readFrame(t testing.TB, br *bufio.Reader) frame {
	t.Helper()
	f, err := tryReadFrame(br)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

func tryReadFrame(br *bufio.Reader) (frame, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		return frame{}, err
	}
	if h.Masked {
		return frame{}, fmt.Errorf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return frame{}, err
	}
	return frame{fin: h.Fin, op: h.OpCode, payload: p}, nil
}

// expectClose reads until a close frame, checks its code, then expects EOF.
func expectClose(t testing.TB, br *bufio.Reader, want ws.StatusCode) {
	t.Helper()
	for {
		f, err := tryReadFrame(br)
		if err != nil {
			t.Fatalf("want close %d, got error %v", want, err)
		}
		if f.op != ws.OpClose {
			continue
		}
		var code ws.StatusCode
		if len(f.payload) >= 2 {
			code = ws.StatusCode(binary.BigEndian.Uint16(f.payload))
		}
		if code != want {
			t.Fatalf("close code %d (%q), want %d", code, f.payload, want)
		}
		break
	}
	expectEOF(t, br)
}

// expectEOF waits for the server to close TCP.
func expectEOF(t testing.TB, r io.Reader) {
	t.Helper()
	buf := make([]byte, 512)
	for {
		_, err := r.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server did not close the connection: %v", err)
		}
		return
	}
}

// remoteBroker makes a broker look remote to the engine: it is not
// broker.InProcess (so its calls run off the loops, answers merged back
// later), and Subscribe, Position and History take a random 0–300 µs, so
// that publications arrive while subscriptions wait for their position.
type remoteBroker struct {
	broker.Broker
}

func (b *remoteBroker) lag() { time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) }

func (b *remoteBroker) Subscribe(ctx context.Context, channel string) error {
	b.lag()
	return b.Broker.Subscribe(ctx, channel)
}

func (b *remoteBroker) Position(ctx context.Context, channel string) (broker.Position, error) {
	b.lag()
	return b.Broker.Position(ctx, channel)
}

func (b *remoteBroker) History(ctx context.Context, channel string, since broker.Position) ([]broker.Publication, broker.Position, error) {
	b.lag()
	return b.Broker.History(ctx, channel, since)
}

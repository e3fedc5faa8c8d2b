package engine

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// fixedStore admits one ticket text any number of times, without allocating,
// so that benchmarks measure the engine, not a store.
type fixedStore struct{ good []byte }

func (s fixedStore) Issue(ticket.Claims, time.Time, time.Duration) (ticket.Ticket, error) {
	return ticket.Ticket{}, ticket.ErrUnavailable
}

func (s fixedStore) Redeem(text []byte, _ time.Time) (ticket.Claims, error) {
	if bytes.Equal(text, s.good) {
		return ticket.Claims{Subject: "maggie"}, nil
	}
	return ticket.Claims{}, ticket.ErrInvalid
}

const (
	benchGood = "AAAAAAAAAAAAAAAAAAAAAA"
	benchUsed = "BBBBBBBBBBBBBBBBBBBBBB"
)

// benchLoop is a loop without gnet: admit runs on in-memory bytes.
func benchLoop(tb testing.TB) *loop {
	s, err := New(Config{Store: fixedStore{good: []byte(benchGood)}})
	if err != nil {
		tb.Fatal(err)
	}
	return newLoop(s, nil, 0)
}

var handshakeBenchCases = []struct {
	name   string
	req    string
	accept bool
}{
	{"accept", upgradeRequest("/ws", benchGood, ""), true},
	{"reject_missing", upgradeRequest("/ws", "", ""), false},
	{"reject_unknown", upgradeRequest("/ws", "CCCCCCCCCCCCCCCCCCCCCC", ""), false},
	{"reject_used", upgradeRequest("/ws", benchUsed, ""), false},
}

func BenchmarkHandshake(b *testing.B) {
	for _, tc := range handshakeBenchCases {
		hdr := []byte(tc.req)
		b.Run("engine/"+tc.name, func(b *testing.B) {
			l := benchLoop(b)
			c := &Conn{}
			b.ReportAllocs()
			for b.Loop() {
				_, ok := l.admit(c, hdr)
				if ok != tc.accept {
					b.Fatalf("admit = %v", ok)
				}
				if ok {
					l.srv.openConns.Add(-1)
				}
			}
		})
		// The alternative: gobwas's plain ws.Upgrade over a bufio reader,
		// checking the ticket from the request URI afterwards.
		b.Run("ws.Upgrade/"+tc.name, func(b *testing.B) {
			store := fixedStore{good: []byte(benchGood)}
			rd := bytes.NewReader(hdr)
			br := bufio.NewReaderSize(rd, 4096)
			var uri []byte
			up := ws.Upgrader{OnRequest: func(u []byte) error { uri = append(uri[:0], u...); return nil }}
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(hdr)
				br.Reset(rd)
				if _, err := up.Upgrade(struct {
					io.Reader
					io.Writer
				}{br, io.Discard}); err != nil {
					b.Fatal(err)
				}
				_, err := store.Redeem(bytes.TrimPrefix(uri, []byte("/ws?ticket=")), time.Time{})
				if (err == nil) != tc.accept {
					b.Fatalf("redeem %v", err)
				}
			}
		})
		b.Run("http.ReadRequest/"+tc.name, func(b *testing.B) {
			store := fixedStore{good: []byte(benchGood)}
			rd := bytes.NewReader(hdr)
			br := bufio.NewReaderSize(rd, 4096)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(hdr)
				br.Reset(rd)
				req, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				_, err = store.Redeem([]byte(req.URL.Query().Get("ticket")), time.Time{})
				if (err == nil) != tc.accept {
					b.Fatalf("redeem %v", err)
				}
			}
		})
	}
}

// acceptConn is a gnet.Conn holding one upgrade request, for benchmarks
// of the whole accept path without sockets: handshake reads the request
// from it and writes the 101 and the welcome to it.
type acceptConn struct {
	gnet.Conn
	in      []byte
	written int
}

func (c *acceptConn) InboundBuffered() int  { return len(c.in) }
func (c *acceptConn) OutboundBuffered() int { return 0 }
func (c *acceptConn) Peek(n int) ([]byte, error) {
	return c.in[:min(n, len(c.in))], nil
}
func (c *acceptConn) Discard(n int) (int, error) {
	c.in = c.in[n:]
	return n, nil
}
func (c *acceptConn) Write(p []byte) (int, error) {
	c.written += len(p)
	return len(p), nil
}

// BenchmarkAccept is the engine's whole share of an admitted connection on
// its loop: the upgrade, the personal channel's subscription and position
// from the embedded broker, the 101 and the welcome written, and the
// teardown OnClose does; what is left of the server's CPU per handshake
// under turnstile-load is gnet's and the kernel's. Beside it, gobwas's
// plain ws.Upgrade of the same request (BenchmarkHandshake's alternative),
// which does none of the subscription work.
func BenchmarkAccept(b *testing.B) {
	hdr := []byte(upgradeRequest("/ws", benchGood, ""))
	b.Run("engine", func(b *testing.B) {
		l := benchLoop(b)
		if err := l.srv.hub.broker.Start(l.srv.hub); err != nil {
			b.Fatal(err)
		}
		defer l.srv.hub.broker.Close()
		gc := &acceptConn{}
		b.ReportAllocs()
		for b.Loop() {
			gc.in, gc.written = hdr, 0
			c := &Conn{gc: gc, loop: l, index: -1}
			if _, _ = l.handshake(c); c.phase != phaseOpen || gc.written == 0 {
				b.Fatalf("phase %d after the handshake, %d bytes written", c.phase, gc.written)
			}
			l.remove(c)
			l.srv.openConns.Add(-1)
		}
	})
	b.Run("ws.Upgrade", func(b *testing.B) {
		rd := bytes.NewReader(hdr)
		br := bufio.NewReaderSize(rd, 4096)
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(hdr)
			br.Reset(rd)
			if _, err := (ws.Upgrader{}).Upgrade(struct {
				io.Reader
				io.Writer
			}{br, io.Discard}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

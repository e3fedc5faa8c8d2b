package engine

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

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

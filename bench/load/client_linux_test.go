//go:build linux

package load

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// recorder is a handler that keeps what happened.
type recorder struct {
	opened, rejected, failed int
	statuses                 []int
	messages                 [][]byte
	errs                     []error
}

func (r *recorder) onOpen(*wsconn, int64) { r.opened++ }
func (r *recorder) onReject(_ *wsconn, status int, _ int64) {
	r.rejected++
	r.statuses = append(r.statuses, status)
}
func (r *recorder) onMessage(_ *wsconn, _ byte, p []byte, _ received, _ int64) {
	r.messages = append(r.messages, bytes.Clone(p))
}
func (r *recorder) onFail(_ *wsconn, err error, _ int64) {
	r.failed++
	r.errs = append(r.errs, err)
}

func pollUntil(t *testing.T, e *engine, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		e.poll(10)
	}
}

func TestEngineAdmitsRejectsAndEchoes(t *testing.T) {
	f := newFakeServer(t) // it reads frames with gobwas/ws: an unmasked or malformed one fails the test
	addr := f.wsAddr
	rec := &recorder{}
	sources := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	e, err := newEngine(addr, "/ws", sources, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer e.shutdown()
	e.nodelay = true
	const good, bad = 20, 20
	now := time.Now().UnixNano()
	for range good {
		e.dial(f.ticket(), 0, now)
	}
	for range bad {
		e.dial(randomTicket(), 0, now)
	}
	pollUntil(t, e, "all handshakes", func() bool { return rec.opened+rec.rejected+rec.failed == good+bad })
	if rec.opened != good || rec.rejected != bad || rec.failed != 0 {
		t.Fatalf("opened %d rejected %d failed %d (%v); want %d %d 0", rec.opened, rec.rejected, rec.failed, rec.errs, good, bad)
	}
	for _, s := range rec.statuses {
		if s != 401 {
			t.Fatalf("rejection status %d, want 401", s)
		}
	}
	if e.live != good {
		t.Fatalf("%d live connections after rejections, want %d", e.live, good)
	}
	pollUntil(t, e, "welcomes", func() bool { return len(rec.messages) == good })
	for _, m := range rec.messages {
		if !strings.Contains(string(m), `"type":"welcome"`) {
			t.Fatalf("first message %q is not the welcome", m)
		}
	}
	// A message larger than 125 and than 64 KiB exercises both extended
	// lengths; the server unmasks it, so the echo proves the masking.
	big := bytes.Repeat([]byte("0123456789"), 7000)
	e.each(func(c *wsconn) {
		e.send(c, opText, []byte(`{"t":42}`), now)
		e.send(c, opBinary, big, now)
	})
	pollUntil(t, e, "echoes", func() bool { return len(rec.messages) == 3*good })
	var small, large int
	for _, m := range rec.messages[good:] {
		switch {
		case string(m) == `{"t":42}`:
			small++
		case bytes.Equal(m, big):
			large++
		default:
			t.Fatalf("unexpected echo of %d bytes", len(m))
		}
	}
	if small != good || large != good {
		t.Fatalf("echoes: %d small, %d large; want %d each", small, large, good)
	}
}

func TestEngineReportsRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	rec := &recorder{}
	e, err := newEngine(addr, "/ws", nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer e.shutdown()
	e.dial("goodAAAAAAAAAAAAAAAAAA", 0, time.Now().UnixNano())
	pollUntil(t, e, "the failure", func() bool { return rec.failed == 1 })
	if rec.opened != 0 || e.live != 0 {
		t.Fatalf("opened %d live %d after a refused connect", rec.opened, e.live)
	}
}

func TestEngineRefusesIPv6(t *testing.T) {
	if _, err := newEngine("[::1]:8081", "/ws", nil, &recorder{}); err != errIPv6Client {
		t.Fatalf("err %v, want errIPv6Client", err)
	}
}

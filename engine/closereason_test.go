package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Every reason has its row: a distinct label, a text that fits a close
// frame, and a code only where the server sends a close of its own.
func TestCloseReasonTable(t *testing.T) {
	seen := map[string]CloseReason{}
	for r := CloseReason(0); r < NumCloseReasons; r++ {
		label := r.String()
		if label == "" || label == "unknown" {
			t.Errorf("reason %d has no label", r)
		}
		if prev, dup := seen[label]; dup {
			t.Errorf("reasons %d and %d share label %q", prev, r, label)
		}
		seen[label] = r
		if len(r.Text()) > 123 {
			t.Errorf("%s: reason text of %d bytes does not fit a close frame", label, len(r.Text()))
		}
		if (r.Code() == 0) != (r.Text() == "") {
			t.Errorf("%s: code %d with text %q", label, r.Code(), r.Text())
		}
	}
	if NumCloseReasons.String() != "unknown" {
		t.Error("an out-of-range reason must say unknown")
	}
}

// A flood of closes of one reason logs one line per second, with the count
// of the rest; another reason is not held back by it.
func TestCloseLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	cl := &closeLog{l: slog.New(slog.NewTextHandler(&buf, nil))}
	s, st := startServer(t, Config{})
	connect(t, s, st, "flood")
	var c *Conn
	s.onEveryLoop(func(l *loop) {
		if len(l.conns) == 0 {
			return
		}
		c = l.conns[0]
		for range 100 {
			cl.conn(c, CloseProtocolError)
		}
		cl.conn(c, CloseSlowConsumer)
		cl.conn(c, CloseClient)
		cl.conn(c, CloseConnectionLost)
	})
	if c == nil {
		t.Fatal("no connection found on any loop")
	}
	out := buf.String()
	if n := strings.Count(out, "reason=protocol_error"); n != 1 {
		t.Errorf("100 protocol errors in a burst logged %d lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "reason=slow_consumer"); n != 1 {
		t.Errorf("slow consumer logged %d times, want 1 (not held back by another reason)", n)
	}
	if strings.Contains(out, "client_close") || strings.Contains(out, "connection_lost") {
		t.Errorf("client-side ends were logged:\n%s", out)
	}
	if !strings.Contains(out, "user=flood") || !strings.Contains(out, "conn="+c.ID()) {
		t.Errorf("log lacks user and conn id:\n%s", out)
	}
}

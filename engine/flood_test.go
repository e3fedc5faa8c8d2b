package engine_test

import (
	"bytes"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/engine"
)

// dialTinyBuffer connects with a 4 KiB receive buffer, so that the kernel
// stops absorbing what the server sends early.
func dialTinyBuffer(t *testing.T, addr string) *wsClient {
	t.Helper()
	d := net.Dialer{Timeout: ioWait, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn, br: newReader(conn)}
}

// flood writes batch (many frames in one write) until a write fails or
// max passes; it reports how long the server took to cut the connection
// and how many bytes went out.
func flood(t *testing.T, c *wsClient, batch []byte, max time.Duration) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	sent := 0
	for time.Since(start) < max {
		_ = c.conn.SetWriteDeadline(time.Now().Add(max))
		n, err := c.conn.Write(batch)
		sent += n
		if err != nil {
			return time.Since(start), sent
		}
	}
	t.Fatalf("server still reads the flood after %v (%s sent)", max, mib(uint64(sent)))
	return 0, 0
}

func closesOf(s *testServer, reasons ...engine.CloseReason) uint64 {
	st := s.Stats()
	var n uint64
	for _, r := range reasons {
		n += st.Closes[r]
	}
	return n
}

// A client that sends pings and never reads is closed with 1008 once what
// is queued for it passes MaxPendingBytes (pongs count, and are coalesced
// while it is behind), or once its input outruns its turns; the server's
// heap returns to where it was, and a well-behaved client on the same loop
// keeps its echo.
func TestPingFloodWithoutReading(t *testing.T) {
	cfg := echoConfig(64 << 10)
	cfg.MaxPendingBytes = 64 << 10
	cfg.Loops = 1
	s := startServer(t, cfg)
	good := dialWS(t, s, "good")
	before := heapAfterGC()

	// Every flood is cut: the pings answered by one coalesced pong per turn
	// too, since a turn's share (framesPerTurn frames, then a resume task
	// after the loop polled again) is far less than gnet reads per event.
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"pings with 125-byte payloads", pingFrame(bytes.Repeat([]byte("p"), 125))},
		{"1-byte text frames (echoed)", textFrame("x")},
		{"empty pings", pingFrame(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flooder := dialTinyBuffer(t, s.addr)
			flooder.handshake(s.issue(t, "flooder"))
			closedBefore := closesOf(s, engine.CloseSlowConsumer, engine.CloseInputFlood)
			took, sent := flood(t, flooder, bytes.Repeat(tc.frame, 4096), 20*time.Second)
			t.Logf("cut after %v, %s sent", took, mib(uint64(sent)))
			deadline := time.Now().Add(ioWait)
			for closesOf(s, engine.CloseSlowConsumer, engine.CloseInputFlood) == closedBefore {
				if time.Now().After(deadline) {
					t.Fatalf("closes = %v: flooder not counted as slow_consumer or input_flood", s.Stats().Closes)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := good.send(textFrame("still served")); err != nil {
				t.Fatal(err)
			}
			if m, err := good.readMessage(); err != nil || string(m.payload) != "still served" {
				t.Fatalf("well-behaved client after the flood: %v %v", m, err)
			}
		})
	}
	flooderGone := time.Now().Add(ioWait)
	for s.Stats().OpenConns != 1 && time.Now().Before(flooderGone) {
		time.Sleep(10 * time.Millisecond)
	}
	after := heapAfterGC()
	t.Logf("heap before %s, after the floods %s", mib(before), mib(after))
	if after > before+8<<20 {
		t.Fatalf("heap grew from %s to %s: the floods' memory was not returned", mib(before), mib(after))
	}
}

// A slow consumer that reads again once the server gave up on it finds the
// whole frames queued before the decision, then the 1008 close: the close
// frame is queued after the last whole frame, never inside one, and
// SendBufferBytes keeps what the kernel holds small enough to drain.
func TestSlowConsumerGetsClose1008(t *testing.T) {
	cfg := engine.Config{MaxPendingBytes: 64 << 10, SendBufferBytes: 16 << 10,
		IdleTimeout: time.Minute, PingInterval: time.Minute}
	s := startServer(t, cfg)
	slow := dialTinyBuffer(t, s.addr)
	slow.handshake(s.issue(t, "slow"))
	data := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	for i := 0; s.Stats().SlowConsumers == 0; i++ {
		if i > 100000 {
			t.Fatal("no slow consumer after 100 MB of publishes")
		}
		s.PublishCount("slow", data)
	}
	// A user publish is a message of the personal channel (DESIGN 1.4).
	wantHead, wantTail := `{"type":"message","channel":"#slow","offset":`, `,"data":`+string(data)+`}`
	messages := 0
	for {
		m, err := slow.readMessage()
		if err != nil {
			t.Fatalf("after %d whole messages: %v (want a 1008 close)", messages, describeEnd(err))
		}
		if m.op == opClose {
			code := frame{payload: m.payload}.closeCode()
			if code != closePolicy || string(m.payload[2:]) != "slow consumer" {
				t.Fatalf("close %d %q, want 1008 slow consumer", code, m.payload)
			}
			break
		}
		if p := string(m.payload); !strings.HasPrefix(p, wantHead) || !strings.HasSuffix(p, wantTail) {
			t.Fatalf("message %d is not a whole frame: %d bytes", messages, len(m.payload))
		}
		messages++
	}
	if end := slow.awaitEOF(); end != "EOF" {
		t.Fatalf("after the close: %s, want EOF", end)
	}
	t.Logf("%d whole messages, then close 1008", messages)
}

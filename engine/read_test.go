package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func closePayload(code ws.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func unmasked(op ws.OpCode, p []byte) []byte { return appendFrame(nil, true, op, p) }

// frameCases: what the client sends after the welcome, and what it must get.
var frameCases = []struct {
	name  string
	send  [][]byte
	echo  []frame       // frames expected before the end
	close ws.StatusCode // 0: the connection stays open (checked with an echo)
}{
	{"text", [][]byte{clientFrame(true, ws.OpText, []byte("héllo"))}, []frame{{true, ws.OpText, []byte("héllo")}}, 0},
	{"binary 65536", [][]byte{clientFrame(true, ws.OpBinary, bytes.Repeat([]byte{7}, 65536))}, []frame{{true, ws.OpBinary, bytes.Repeat([]byte{7}, 65536)}}, 0},
	{"empty text", [][]byte{clientFrame(true, ws.OpText, nil)}, []frame{{true, ws.OpText, []byte{}}}, 0},
	{"ping", [][]byte{clientFrame(true, ws.OpPing, []byte("abc"))}, []frame{{true, ws.OpPong, []byte("abc")}}, 0},
	{"pong ignored", [][]byte{clientFrame(true, ws.OpPong, []byte("x")), clientFrame(true, ws.OpText, []byte("a"))}, []frame{{true, ws.OpText, []byte("a")}}, 0},
	{"fragmented with ping between", [][]byte{
		clientFrame(false, ws.OpText, []byte("he")),
		clientFrame(true, ws.OpPing, []byte("p")),
		clientFrame(false, ws.OpContinuation, []byte("ll")),
		clientFrame(true, ws.OpContinuation, []byte("o")),
	}, []frame{{true, ws.OpPong, []byte("p")}, {true, ws.OpText, []byte("hello")}}, 0},
	{"code point split across fragments", [][]byte{
		clientFrame(false, ws.OpText, []byte("\xf0\x9f")),
		clientFrame(true, ws.OpContinuation, []byte("\x98\x80")),
	}, []frame{{true, ws.OpText, []byte("😀")}}, 0},
	{"unmasked", [][]byte{unmasked(ws.OpText, []byte("x"))}, nil, ws.StatusProtocolError},
	{"rsv1", [][]byte{func() []byte { f := clientFrame(true, ws.OpText, []byte("x")); f[0] |= 0x40; return f }()}, nil, ws.StatusProtocolError},
	{"reserved opcode", [][]byte{clientFrame(true, 3, nil)}, nil, ws.StatusProtocolError},
	{"reserved control opcode", [][]byte{clientFrame(true, 0xb, nil)}, nil, ws.StatusProtocolError},
	{"ping 126 bytes", [][]byte{clientFrame(true, ws.OpPing, make([]byte, 126))}, nil, ws.StatusProtocolError},
	{"fragmented ping", [][]byte{clientFrame(false, ws.OpPing, nil)}, nil, ws.StatusProtocolError},
	{"continuation without start", [][]byte{clientFrame(true, ws.OpContinuation, []byte("x"))}, nil, ws.StatusProtocolError},
	{"new message inside fragmented", [][]byte{
		clientFrame(false, ws.OpText, []byte("a")), clientFrame(true, ws.OpText, []byte("b")),
	}, nil, ws.StatusProtocolError},
	{"invalid utf-8", [][]byte{clientFrame(true, ws.OpText, []byte("a\xff"))}, nil, ws.StatusInvalidFramePayloadData},
	{"invalid utf-8 fails fast", [][]byte{clientFrame(false, ws.OpText, []byte("ok\xed\xa0\x80"))}, nil, ws.StatusInvalidFramePayloadData},
	{"truncated utf-8 at the end", [][]byte{
		clientFrame(false, ws.OpText, []byte("a\xe2")), clientFrame(true, ws.OpContinuation, nil),
	}, nil, ws.StatusInvalidFramePayloadData},
	{"too big, decided from the header", [][]byte{{0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 1, 2, 3, 4}}, nil, ws.StatusMessageTooBig},
	{"too big over fragments", [][]byte{
		clientFrame(false, ws.OpBinary, make([]byte, 40000)), clientFrame(true, ws.OpContinuation, make([]byte, 40000)),
	}, nil, ws.StatusMessageTooBig},
	{"2^62 length", [][]byte{{0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, nil, ws.StatusMessageTooBig},
	{"top bit length", [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, nil, ws.StatusProtocolError},
	{"close echoed", [][]byte{clientFrame(true, ws.OpClose, closePayload(4001, "bye"))}, nil, 4001},
	{"close empty", [][]byte{clientFrame(true, ws.OpClose, nil)}, nil, 0xffff},
	{"close one byte", [][]byte{clientFrame(true, ws.OpClose, []byte{3})}, nil, ws.StatusProtocolError},
	{"close code 1005", [][]byte{clientFrame(true, ws.OpClose, closePayload(1005, ""))}, nil, ws.StatusProtocolError},
	{"close code 5000", [][]byte{clientFrame(true, ws.OpClose, closePayload(5000, ""))}, nil, ws.StatusProtocolError},
	{"close reason invalid utf-8", [][]byte{clientFrame(true, ws.OpClose, closePayload(1000, "\xff"))}, nil, ws.StatusInvalidFramePayloadData},
	{"data after close ignored", [][]byte{
		bytes.Join([][]byte{clientFrame(true, ws.OpClose, closePayload(1000, "")), clientFrame(true, ws.OpText, []byte("late"))}, nil),
	}, nil, 1000},
}

func TestFrames(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	for _, tc := range frameCases {
		t.Run(tc.name, func(t *testing.T) {
			conn, br, _ := connect(t, s, st, "maggie")
			for _, p := range tc.send {
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range tc.echo {
				got := readFrame(t, br)
				if got.op != want.op || !bytes.Equal(got.payload, want.payload) {
					t.Fatalf("got %v %q, want %v %q", got.op, trim(got.payload), want.op, trim(want.payload))
				}
			}
			switch tc.close {
			case 0:
				conn.Write(clientFrame(true, ws.OpText, []byte("still open")))
				if got := readFrame(t, br); string(got.payload) != "still open" {
					t.Fatalf("got %q after the case", got.payload)
				}
			case 0xffff: // an empty close is answered with an empty close
				f := readFrame(t, br)
				if f.op != ws.OpClose || len(f.payload) != 0 {
					t.Fatalf("got %v %q, want an empty close", f.op, f.payload)
				}
				expectEOF(t, br)
			default:
				expectClose(t, br, tc.close)
			}
		})
	}
}

func trim(p []byte) []byte { return p[:min(len(p), 40)] }

// The handshake and the frame that follows, split at every byte offset:
// whatever the cut, the server answers with the welcome and the echo.
func TestSplitAtEveryOffset(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	msg := clientFrame(true, ws.OpText, []byte(strings.Repeat("ü", 70)))
	reqLen := len(upgradeRequest("/ws", st.add("x"), ""))
	for cut := 1; cut < reqLen+len(msg); cut++ {
		tk := st.add("maggie")
		all := []byte(upgradeRequest("/ws", tk, ""))
		all = append(all, msg...)
		conn := dial(t, s)
		conn.Write(all[:cut])
		time.Sleep(time.Millisecond) // let the first piece arrive alone
		conn.Write(all[cut:])
		br := bufio.NewReader(conn)
		if resp := readResponse(t, br); resp.StatusCode != 101 {
			t.Fatalf("cut %d: status %d", cut, resp.StatusCode)
		}
		readFrame(t, br) // welcome
		if f := readFrame(t, br); !bytes.Equal(f.payload, []byte(strings.Repeat("ü", 70))) {
			t.Fatalf("cut %d: echo %q", cut, f.payload)
		}
		conn.Close()
	}
}

// A frame written in the same packet as the upgrade request is not lost.
func TestPipelinedFrame(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	conn := dial(t, s)
	all := append([]byte(upgradeRequest("/ws", st.add("maggie"), "")), clientFrame(true, ws.OpText, []byte("first"))...)
	all = append(all, clientFrame(true, ws.OpBinary, []byte("second"))...)
	conn.Write(all)
	br := bufio.NewReader(conn)
	if resp := readResponse(t, br); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	readFrame(t, br)
	for _, want := range []string{"first", "second"} {
		if f := readFrame(t, br); string(f.payload) != want {
			t.Fatalf("got %q, want %q", f.payload, want)
		}
	}
}

// Without echo, data messages reach OnMessage, reassembled.
func TestOnMessage(t *testing.T) {
	type msg struct {
		user string
		op   byte
		data string
	}
	got := make(chan msg, 4)
	s, st := startServer(t, Config{OnMessage: func(c *Conn, op byte, data []byte) {
		got <- msg{c.User(), op, string(data)}
	}})
	conn, _, _ := connect(t, s, st, "maggie")
	conn.Write(clientFrame(false, ws.OpBinary, []byte("ab")))
	conn.Write(clientFrame(true, ws.OpContinuation, []byte("cd")))
	select {
	case m := <-got:
		if m != (msg{"maggie", byte(ws.OpBinary), "abcd"}) {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(testTimeout):
		t.Fatal("OnMessage not called")
	}
	if n := s.Stats().MessagesIn; n != 1 {
		t.Fatalf("MessagesIn = %d", n)
	}
}

func TestConnIDsUnique(t *testing.T) {
	s, st := startServer(t, Config{})
	seen := map[string]bool{}
	var mu sync.Mutex
	for range 20 {
		_, _, welcome := connect(t, s, st, "maggie")
		_, id, _ := strings.Cut(welcome, `"conn":"`)
		mu.Lock()
		if seen[id] {
			t.Fatalf("duplicate conn id %s", id)
		}
		seen[id] = true
		mu.Unlock()
	}
}

// An echo client that stops reading is a slow consumer like any other: the
// echo goes through the same MaxPendingBytes check as pushed messages, and
// the connection is closed while the server stays responsive.
func TestEchoSlowConsumerIsClosed(t *testing.T) {
	s, st := startServer(t, Config{Echo: true, MaxPendingBytes: 64 << 10})
	conn, _, _ := connect(t, s, st, "reader-gone")
	msg := clientFrame(true, ws.OpBinary, make([]byte, 32<<10))
	deadline := time.Now().Add(20 * time.Second)
	sent, lastErr := 0, error(nil)
	for s.Stats().SlowConsumers == 0 && time.Now().Before(deadline) {
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, lastErr = conn.Write(msg); lastErr != nil {
			break // the server closed us
		}
		sent++
	}
	t.Logf("sent %d messages of 32 KiB; last write error: %v", sent, lastErr)
	for s.Stats().SlowConsumers == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Stats().SlowConsumers; n != 1 {
		t.Fatalf("slow consumers = %d, want 1", n)
	}
	// The other clients are unaffected: a fresh one still gets its echo.
	other, br, _ := connect(t, s, st, "reader")
	if _, err := other.Write(clientFrame(true, ws.OpText, []byte("still here"))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, br); string(f.payload) != "still here" {
		t.Fatalf("echo %q", f.payload)
	}
}

package engine

// Fuzz targets for the two parsers that read untrusted bytes: the upgrade
// request (handshake) and the frame reader. Both run through the real gnet
// callbacks (OnOpen, OnTraffic, OnClose) over an in-memory gnet.Conn that
// behaves like gnet's: unconsumed bytes stay buffered until the next call.
//
// Each input is played twice, whole and cut into random chunks, and must
// produce exactly the same output: a parser that depends on how TCP
// happened to segment the stream is wrong. After every call the reader
// must have left no complete request or frame behind (gnet would not call
// it again for them) and must hold no more than one request or frame in
// progress (bounded memory).
//
//	go test -run '^$' -fuzz FuzzHandshake -fuzztime 10m ./engine
//	go test -run '^$' -fuzz FuzzFrames -fuzztime 10m ./engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// Limits of the fuzzed server: small, so that the fuzzer reaches them.
const (
	fuzzMaxHeader  = 1024
	fuzzMaxMessage = 4096
	fuzzTicket     = "AAAAAAAAAAAAAAAAAAAAAA"
)

// fuzzStore admits fuzzTicket any number of times, so that runs repeat.
type fuzzStore struct{}

func (fuzzStore) Issue(ticket.Claims, time.Time, time.Duration) (ticket.Ticket, error) {
	return ticket.Ticket{}, ticket.ErrUnavailable
}

func (fuzzStore) Redeem(text []byte, _ time.Time) (ticket.Claims, error) {
	if string(text) == fuzzTicket {
		return ticket.Claims{Subject: "fuzz"}, nil
	}
	return ticket.Claims{}, ticket.ErrInvalid
}

// memConn is an in-memory gnet.Conn with gnet's buffering semantics for the
// calls the engine makes. Any other call panics through the nil embedded
// interface, which the fuzzer reports.
type memConn struct {
	gnet.Conn
	ctx    any
	in     []byte // received and not yet discarded
	out    []byte // everything written
	el     *taskLoop
	closed bool // the engine closed it from a task
}

func (m *memConn) Context() any              { return m.ctx }
func (m *memConn) SetContext(ctx any)        { m.ctx = ctx }
func (m *memConn) EventLoop() gnet.EventLoop { return m.el }

// taskLoop stands in for a gnet event loop: Execute queues the task for
// the test goroutine, which runs it (runQueued), so the loop's state is
// still touched by one goroutine only.
type taskLoop struct {
	gnet.EventLoop
	tasks chan gnet.Runnable
}

func newTaskLoop() *taskLoop { return &taskLoop{tasks: make(chan gnet.Runnable, 1024)} }

func (l *taskLoop) Execute(_ context.Context, r gnet.Runnable) error {
	l.tasks <- r
	return nil
}

func (l *taskLoop) Close(gc gnet.Conn) error {
	if m, ok := gc.(*memConn); ok {
		m.closed = true
	}
	return nil
}

// waitWelcome runs the loop's tasks until c has left the welcome phase.
func (l *taskLoop) waitWelcome(tb testing.TB, c *Conn) {
	for c.phase == phaseWelcome {
		select {
		case r := <-l.tasks:
			_ = r.Run(context.Background())
		case <-time.After(testTimeout):
			tb.Fatal("no welcome")
		}
	}
}
func (m *memConn) InboundBuffered() int  { return len(m.in) }
func (m *memConn) OutboundBuffered() int { return 0 }
func (m *memConn) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (m *memConn) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }

// Peek follows gnet: n <= 0 means everything, more than buffered is
// io.ErrShortBuffer.
func (m *memConn) Peek(n int) ([]byte, error) {
	if n > len(m.in) {
		return nil, io.ErrShortBuffer
	}
	if n <= 0 {
		n = len(m.in)
	}
	return m.in[:n:n], nil
}

// Discard follows gnet: n <= 0 or n >= buffered discards everything.
func (m *memConn) Discard(n int) (int, error) {
	if n <= 0 || n >= len(m.in) {
		n = len(m.in)
		m.in = m.in[:0]
		return n, nil
	}
	m.in = append(m.in[:0], m.in[n:]...)
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	m.out = append(m.out, p...)
	return len(p), nil
}

// fuzzServer is one engine per fuzz process, never started: its handler is
// driven directly.
type fuzzServer struct {
	s  *Server
	h  *handler
	el *taskLoop
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	s, err := New(Config{
		Store:           fuzzStore{},
		Echo:            true,
		MaxHeaderBytes:  fuzzMaxHeader,
		MaxMessageBytes: fuzzMaxMessage,
		Origins:         []string{"https://ok.example"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.hub.broker.Start(s.hub); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.hub.broker.Close() })
	return &fuzzServer{s: s, h: &handler{s: s}, el: newTaskLoop()}
}

// playResult is what a connection produced.
type playResult struct {
	out    []byte
	closed bool // the engine asked gnet to close
}

// play feeds data to a fresh connection in the given chunk sizes (the last
// chunk takes the rest) and checks the invariants after every call.
func (f *fuzzServer) play(t *testing.T, data []byte, chunks []int) playResult {
	m := &memConn{el: f.el}
	if _, action := f.h.OnOpen(m); action != gnet.None {
		t.Fatalf("OnOpen: action %v", action)
	}
	c := m.ctx.(*Conn)
	c.loop.lastSeq.Store(0) // the same connection id in every play, for comparison
	defer func() {
		f.h.OnClose(m, nil)
		// OnOpen queued a handshake deadline that no tick will pop here.
		l := c.loop
		clear(l.pending)
		l.pending, l.pendingHead = l.pending[:0], 0
	}()
	var res playResult
	for len(data) > 0 {
		n := len(data)
		if len(chunks) > 0 {
			n = min(max(chunks[0], 1), n)
			chunks = chunks[1:]
		}
		m.in = append(m.in, data[:n]...)
		data = data[n:]
		action := f.h.OnTraffic(m)
		f.el.waitWelcome(t, c)
		if action == gnet.Close || m.closed {
			res.closed = true
			break
		}
		if action != gnet.None {
			t.Fatalf("OnTraffic: action %v", action)
		}
		checkLeftover(t, c, m.in)
	}
	res.out = m.out
	return res
}

// checkLeftover asserts that what the engine left buffered is an
// incomplete request or frame, of bounded size.
func checkLeftover(t *testing.T, c *Conn, in []byte) {
	t.Helper()
	switch c.phase {
	case phaseHandshake:
		if len(in) >= fuzzMaxHeader {
			t.Fatalf("handshake holds %d bytes, limit %d", len(in), fuzzMaxHeader)
		}
		if bytes.Contains(in, []byte("\r\n\r\n")) {
			t.Fatalf("complete request left unprocessed: %q", in)
		}
	case phaseOpen, phaseClosing:
		if len(in) >= maxHeaderLen+fuzzMaxMessage {
			t.Fatalf("frame reader holds %d bytes, limit %d", len(in), maxHeaderLen+fuzzMaxMessage)
		}
		if total, ok := frameSize(in); ok && total <= len(in) {
			t.Fatalf("complete %d-byte frame left unprocessed (%d buffered)", total, len(in))
		}
		if c.fragLen() > fuzzMaxMessage {
			t.Fatalf("fragments hold %d bytes, limit %d", c.fragLen(), fuzzMaxMessage)
		}
	}
}

// frameSize is an independent reading of a frame's total size from its
// header; ok is false while the header is incomplete.
func frameSize(b []byte) (int, bool) {
	hl, n, ok := frameParts(b)
	return hl + n, ok
}

// frameParts returns the header and payload lengths of the frame at the
// start of b; ok is false while the header is incomplete, or for a length
// no reader would wait for.
func frameParts(b []byte) (hl, n int, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	l, hl := uint64(b[1]&0x7f), 2
	switch l {
	case 126:
		if len(b) < 4 {
			return 0, 0, false
		}
		l, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, 0, false
		}
		l, hl = binary.BigEndian.Uint64(b[2:]), 10
	}
	if b[1]&0x80 != 0 {
		hl += 4
	}
	if l > 1<<40 {
		return 0, 0, false
	}
	return hl, int(l), true
}

// randomChunks cuts n bytes into sizes drawn from seed, mostly small.
func randomChunks(n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var sizes []int
	for n > 0 {
		var k int
		switch r.IntN(4) {
		case 0:
			k = 1
		case 1:
			k = 1 + r.IntN(8)
		case 2:
			k = 1 + r.IntN(64)
		default:
			k = 1 + r.IntN(2048)
		}
		k = min(k, n)
		sizes = append(sizes, k)
		n -= k
	}
	return sizes
}

var epochRE = regexp.MustCompile(`"epoch":"[^"]*"`)

// fuzzPlayBoth plays data whole and chunked and compares the two.
func fuzzPlayBoth(t *testing.T, f *fuzzServer, data []byte, seed uint64) playResult {
	whole := f.play(t, data, nil)
	chunked := f.play(t, data, randomChunks(len(data), seed))
	// A channel never published to gets a fresh epoch each time it is
	// looked up again: compare the rest.
	norm := func(b []byte) []byte { return epochRE.ReplaceAll(b, []byte(`"epoch":"E"`)) }
	if whole.closed != chunked.closed || !bytes.Equal(norm(whole.out), norm(chunked.out)) {
		t.Fatalf("chunking changed the result:\nwhole   closed=%v out=%q\nchunked closed=%v out=%q",
			whole.closed, whole.out, chunked.closed, chunked.out)
	}
	// Output is bounded by the input: one response, then at most one frame
	// (echo, pong or close) per input frame.
	if len(whole.out) > 1024+2*len(data) {
		t.Fatalf("%d bytes written for %d bytes read", len(whole.out), len(data))
	}
	return whole
}

// Seed material shared by both targets.

func seedRequest(path, tk string, extra string) []byte {
	return []byte("GET " + path + "?ticket=" + tk + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n")
}

func seedFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := rsv<<4 | op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var mb byte
	if masked {
		mb = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mb|byte(n))
	case n <= 0xffff:
		out = append(out, mb|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mb|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	if masked {
		out = append(out, key[:]...)
	}
	start := len(out)
	out = append(out, payload...)
	if masked {
		for i := range payload {
			out[start+i] ^= key[i%4]
		}
	}
	return out
}

func seedFrames() [][]byte {
	m := func(fin bool, op byte, p string) []byte { return seedFrame(fin, 0, op, []byte(p), true) }
	return [][]byte{
		m(true, 1, "Hello"),
		m(true, 2, "\x00\xff"),
		m(true, 9, "ping"),
		m(true, 10, "pong"),
		m(true, 8, "\x03\xe8bye"),
		m(true, 8, "\x03"),
		m(true, 8, "\x03\xe8\xed\xa0\x80"),
		m(false, 1, "frag1"),
		m(true, 0, "frag2"),
		m(false, 1, "\xce"),
		m(true, 0, "\xba"),
		m(true, 1, "\xed\xa0\x80"),
		seedFrame(true, 4, 1, []byte("rsv1"), true),
		seedFrame(true, 0, 1, []byte("unmasked"), false),
		m(true, 3, "reserved"),
		m(false, 9, "fragmented ping"),
		seedFrame(true, 0, 2, bytes.Repeat([]byte{7}, 200), true),
		seedFrame(true, 0, 2, bytes.Repeat([]byte{7}, fuzzMaxMessage+1), true),
		{0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, // 2^62 declared
		{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, // 2^63: top bit
	}
}

func FuzzHandshake(f *testing.F) {
	good := seedRequest("/ws", fuzzTicket, "")
	f.Add(good, uint64(1))
	f.Add(seedRequest("/ws", fuzzTicket, "Origin: https://ok.example\r\n"), uint64(2))
	f.Add(seedRequest("/ws", fuzzTicket, "Origin: https://evil.example\r\n"), uint64(3))
	f.Add(seedRequest("/other", fuzzTicket, ""), uint64(4))
	f.Add(seedRequest("/ws", "short", ""), uint64(5))
	f.Add(bytes.Replace(good, []byte("Version: 13"), []byte("Version: 8"), 1), uint64(6))
	f.Add(bytes.Replace(good, []byte("GET"), []byte("POST"), 1), uint64(7))
	f.Add(append(append([]byte{}, good[:len(good)-2]...), bytes.Repeat([]byte("X-A: b\r\n"), 200)...), uint64(8))
	f.Add([]byte("GET /ws HTTP/1.1\r\n\r\n"), uint64(9))
	f.Add(append(append([]byte{}, good...), seedFrame(true, 0, 1, []byte("pipelined"), true)...), uint64(10))
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		res := fuzzPlayBoth(t, fs, data, seed)
		// Whatever the request, the answer is a 101 or one of the prebuilt
		// rejections (or nothing yet / a silent close).
		if len(res.out) == 0 {
			return
		}
		if bytes.HasPrefix(res.out, []byte("HTTP/1.1 101 ")) {
			return
		}
		for _, r := range rejectResponses {
			if r != nil && bytes.Equal(res.out, r) {
				if !res.closed {
					t.Fatalf("rejected without closing: %q", res.out)
				}
				return
			}
		}
		t.Fatalf("unexpected answer %q", res.out)
	})
}

func FuzzFrames(f *testing.F) {
	hs := seedRequest("/ws", fuzzTicket, "")
	frames := seedFrames()
	for i, fr := range frames {
		f.Add(fr, uint64(i))
	}
	f.Add(bytes.Join(frames[:4], nil), uint64(100))
	f.Add(bytes.Join([][]byte{frames[7], frames[2], frames[8]}, nil), uint64(101))
	f.Add(bytes.Join([][]byte{frames[9], frames[10], frames[0], frames[4]}, nil), uint64(102))
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		// The fuzzer mutates the frames; the handshake before them is fixed
		// and valid, and chunks may cut across the boundary (pipelining).
		stream := append(append(make([]byte, 0, len(hs)+len(data)), hs...), data...)
		res := fuzzPlayBoth(t, fs, stream, seed)
		if !bytes.HasPrefix(res.out, []byte("HTTP/1.1 101 ")) {
			t.Fatalf("valid handshake not admitted: %q", res.out)
		}
		checkServerFrames(t, res.out)
	})
}

// checkServerFrames parses everything after the 101 response and welcome
// as server frames: unmasked, no RSV bits, control frames whole and short,
// nothing after a close frame.
func checkServerFrames(t *testing.T, out []byte) {
	t.Helper()
	i := bytes.Index(out, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatalf("no end of response in %q", out)
	}
	b := out[i+4:]
	closed := false
	for len(b) > 0 {
		if closed {
			t.Fatalf("bytes after the close frame: %q", b)
		}
		hl, n, ok := frameParts(b)
		total := hl + n
		if !ok || total > len(b) {
			t.Fatalf("truncated server frame %q", b)
		}
		if b[1]&0x80 != 0 || b[0]&0x70 != 0 {
			t.Fatalf("server frame masked or with RSV bits: % x", b[:2])
		}
		op := b[0] & 0x0f
		if op >= 8 && (b[0]&0x80 == 0 || n > 125) {
			t.Fatalf("server control frame fragmented or too long: % x", b[:2])
		}
		if op == 8 {
			closed = true
		}
		b = b[total:]
	}
}

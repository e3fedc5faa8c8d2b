package engine

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"
	"testing"
)

// inflateServerFrame inflates a compressed frame deflateFrame built.
func inflateServerFrame(t *testing.T, frame []byte) []byte {
	t.Helper()
	if frame[0]&0x40 == 0 || frame[0]&0x80 == 0 {
		t.Fatalf("frame header %#x: want FIN and RSV1", frame[0])
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(frame[serverHeaderLen(frame):]), bytes.NewReader(deflateTail)))
	p, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestZframeOncePerPublish: every compressing recipient on every loop gets
// the very same compressed frame (compressed once), a plain recipient the
// plain frame.
func TestZframeOncePerPublish(t *testing.T) {
	s, err := New(Config{Store: fixedStore{}, Compression: true})
	if err != nil {
		t.Fatal(err)
	}
	s.deflateConns.Add(1)
	data := notification1K()
	plain := encodeMessage(data)
	z := s.newZframe(len(plain))
	if z == nil {
		t.Fatal("no zframe for a 1 KiB payload with a compressing connection")
	}
	zc, pc := &Conn{deflate: true}, &Conn{}
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = z.frameFor(zc, plain) }()
	}
	wg.Wait()
	for i := range got {
		if &got[i][0] != &got[0][0] {
			t.Fatal("recipients got different compressed frames: compressed more than once")
		}
	}
	if len(got[0]) >= len(plain)/2 {
		t.Errorf("compressed frame %d bytes, plain %d: want under half", len(got[0]), len(plain))
	}
	if inflated, want := inflateServerFrame(t, got[0]), plain[serverHeaderLen(plain):]; !bytes.Equal(inflated, want) {
		t.Fatalf("inflated %q, want %q", inflated, want)
	}
	if f := z.frameFor(pc, plain); &f[0] != &plain[0] {
		t.Fatal("a connection without compression got the compressed frame")
	}
}

// TestZframeWhenNotWanted: no compressed form below the threshold, with
// compression off, or with no compressing connection on the node; and an
// incompressible payload goes plain.
func TestZframeWhenNotWanted(t *testing.T) {
	on, _ := New(Config{Store: fixedStore{}, Compression: true, CompressionMinBytes: 512})
	off, _ := New(Config{Store: fixedStore{}})
	if on.newZframe(1000) != nil {
		t.Error("zframe without any compressing connection")
	}
	on.deflateConns.Add(1)
	off.deflateConns.Add(1)
	if on.newZframe(511) != nil {
		t.Error("zframe below CompressionMinBytes")
	}
	if on.newZframe(512) == nil {
		t.Error("no zframe at CompressionMinBytes")
	}
	if off.newZframe(1<<20) != nil {
		t.Error("zframe with compression off")
	}
	random := make([]byte, 2048)
	for i := range random {
		random[i] = byte(i*2654435761>>13) ^ byte(i>>3)
	}
	if f := deflateFrame(2, random); f != nil && len(f) >= len(random) {
		t.Errorf("deflateFrame returned a frame no smaller than its payload")
	}
}

// TestInflateBound: a bomb fails with errInflateTooBig, the loop's buffer
// never grows past limit+1, and a message of exactly limit bytes passes.
func TestInflateBound(t *testing.T) {
	l := benchLoop(t)
	const limit = 64 << 10
	deflate := func(p []byte) []byte {
		f := deflateFrame(2, p)
		return f[serverHeaderLen(f):]
	}
	if _, err := l.inflate(deflate(make([]byte, 32<<20)), limit); !errors.Is(err, errInflateTooBig) {
		t.Fatalf("32 MiB bomb: %v, want errInflateTooBig", err)
	}
	if c := cap(l.inflated); c > limit+1 {
		t.Fatalf("inflate buffer grew to %d bytes, past limit+1", c)
	}
	if _, err := l.inflate(deflate(make([]byte, limit+1)), limit); !errors.Is(err, errInflateTooBig) {
		t.Fatalf("limit+1: %v, want errInflateTooBig", err)
	}
	msg := bytes.Repeat([]byte("abcdefgh"), limit/8)
	got, err := l.inflate(deflate(msg), limit)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("exactly limit: %d bytes, %v", len(got), err)
	}
	if _, err := l.inflate([]byte{0xff, 0xff, 0xff}, limit); !errors.Is(err, errInflate) {
		t.Fatalf("garbage: %v, want errInflate", err)
	}
}

// TestRSV1Bit: rsv1 matches how parseHeader stores a frame's RSV1 (the
// negotiation itself is conformance category 13).
func TestRSV1Bit(t *testing.T) {
	h, _, _ := parseHeader([]byte{0x80 | 0x40 | 1, 0x80, 0, 0, 0, 0})
	if h.Rsv != rsv1 || !h.Rsv1() {
		t.Fatalf("parsed Rsv %#x, rsv1 is %#x", h.Rsv, rsv1)
	}
}

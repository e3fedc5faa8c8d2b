package load

import (
	"bytes"
	"errors"
	"testing"
)

// serverFrame builds an unmasked frame; rsv1 marks it compressed.
func serverFrame(fin, rsv1 bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	f := []byte{b0}
	if n := len(payload); n < 126 {
		f = append(f, byte(n))
	} else {
		f = append(f, 126, byte(n>>8), byte(n))
	}
	return append(f, payload...)
}

// wireRecorder keeps each message with how it arrived.
type wireRecorder struct {
	recorder
	rx []received
}

func (r *wireRecorder) onMessage(c *wsconn, op byte, p []byte, rx received, now int64) {
	r.recorder.onMessage(c, op, p, rx, now)
	r.rx = append(r.rx, rx)
}

// TestEngineInflatesMessages feeds the engine's frame loop what a
// compressing server sends: a compressed message in one frame, one
// fragmented over three frames (RSV1 on the first only, as gorilla does
// past its write buffer), and a plain one; each is delivered inflated,
// with every frame's bytes counted on the wire.
func TestEngineInflatesMessages(t *testing.T) {
	r := &wireRecorder{}
	e := &engine{h: r}
	c := &wsconn{fd: -1, state: stOpen, opened: true, deflate: true}
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	big := fanoutData(4, 99, 4096)
	z := deflateMessage(t, big)
	third := len(z) / 3
	var in []byte
	in = append(in, serverFrame(true, true, opText, hello)...)
	parts := [][]byte{
		serverFrame(false, true, opText, z[:third]),
		serverFrame(false, false, opContinuation, z[third:2*third]),
		serverFrame(true, false, opContinuation, z[2*third:]),
	}
	for _, p := range parts {
		in = append(in, p...)
	}
	in = append(in, serverFrame(true, false, opText, []byte("plain"))...)
	// Byte by byte: every frame boundary falls inside a read somewhere.
	var buf []byte
	for i := range in {
		buf = append(buf, in[i])
		buf = buf[e.process(c, buf, 0):]
	}
	if r.failed != 0 || len(r.messages) != 3 {
		t.Fatalf("%d messages, failures %v", len(r.messages), r.errs)
	}
	if string(r.messages[0]) != "Hello" || !bytes.Equal(r.messages[1], big) || string(r.messages[2]) != "plain" {
		t.Fatalf("messages %q… wrong", r.messages[0])
	}
	wantWire := len(parts[0]) + len(parts[1]) + len(parts[2])
	if r.rx[0] != (received{wire: 2 + len(hello), deflated: true}) || r.rx[1] != (received{wire: wantWire, deflated: true}) ||
		r.rx[2] != (received{wire: 7, deflated: false}) {
		t.Fatalf("received %+v, want wire %d for the fragmented one", r.rx, wantWire)
	}
}

// TestEngineRefusesStrayRSV1: RSV1 is a protocol error without the
// extension agreed, on a continuation and on a control frame.
func TestEngineRefusesStrayRSV1(t *testing.T) {
	for name, tc := range map[string]struct {
		deflate bool
		frames  [][]byte
	}{
		"not agreed":   {false, [][]byte{serverFrame(true, true, opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})}},
		"continuation": {true, [][]byte{serverFrame(false, false, opText, []byte("a")), serverFrame(true, true, opContinuation, []byte("b"))}},
		"control":      {true, [][]byte{serverFrame(true, true, opPing, nil)}},
		"no start":     {true, [][]byte{serverFrame(true, false, opContinuation, []byte("b"))}},
	} {
		r := &wireRecorder{}
		e := &engine{h: r}
		c := &wsconn{fd: -1, state: stOpen, opened: true, deflate: tc.deflate}
		e.process(c, bytes.Join(tc.frames, nil), 0)
		if r.failed != 1 || !errors.Is(r.errs[0], errFrame) || len(r.messages) != 0 {
			t.Errorf("%s: failed %d (%v), %d messages", name, r.failed, r.errs, len(r.messages))
		}
	}
}

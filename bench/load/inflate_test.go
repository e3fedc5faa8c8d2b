package load

import (
	"bytes"
	"compress/flate"
	"testing"
)

// deflateMessage compresses p as a permessage-deflate sender does: one
// sync-flushed stream with its trailing 00 00 ff ff removed (RFC 7692 7.2.1).
func deflateMessage(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out, ok := bytes.CutSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	if !ok {
		t.Fatal("flush did not end with 00 00 ff ff")
	}
	return out
}

func TestInflateRFC7692Example(t *testing.T) {
	var f inflater
	// RFC 7692 7.2.3.1: "Hello" compressed, as sent (tail removed); and
	// 7.2.3.3, the same in a DEFLATE block with no compression.
	for _, in := range [][]byte{
		{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
		{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
	} {
		for range 2 { // the second time through a reset reader
			got, err := f.inflate(in)
			if err != nil || string(got) != "Hello" {
				t.Fatalf("inflate % x: %q, %v", in, got, err)
			}
		}
	}
	if _, err := f.inflate([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("invalid deflate data inflated")
	}
	// Truncated: the reader must not take a cut stream for a whole one.
	long := deflateMessage(t, fanoutData(1, 1, 1024))
	if _, err := f.inflate(long[:len(long)/2]); err == nil {
		t.Error("truncated message inflated")
	}
	want := fanoutData(2, 12345, 4096)
	got, err := f.inflate(deflateMessage(t, want))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("round trip of %d bytes: %d bytes, %v", len(want), len(got), err)
	}
}

func TestAcceptsDeflate(t *testing.T) {
	for head, want := range map[string]bool{
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n": true,
		"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-extensions:permessage-deflate\r\n\r\n":                                                                                true,
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n":                                                                                                         false,
		"HTTP/1.1 101 Switching Protocols\r\nX-Note: permessage-deflate\r\n\r\n":                                                                                                 false,
	} {
		if got := acceptsDeflate([]byte(head)); got != want {
			t.Errorf("%q: %v, want %v", head, got, want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestPeerGoCompression: a real client library (coder/websocket, which
// compresses without context takeover when asked) against the binary with
// -compression on -echo: the extension is granted with both
// no_context_takeover parameters, and compressed messages, whole and
// fragmented, come back exactly.
func TestPeerGoCompression(t *testing.T) {
	s := startBinary(t, append([]string{"-compression", "on", "-compression-min-bytes", "64"}, peerServerArgs...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := s.Login(t, "maggie", "secret")
	_, url := s.Ticket(t, token)
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		CompressionMode: websocket.CompressionNoContextTakeover, CompressionThreshold: 1})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	ext := strings.ReplaceAll(resp.Header.Get("Sec-WebSocket-Extensions"), " ", "")
	if !strings.HasPrefix(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") || !strings.Contains(ext, "client_no_context_takeover") {
		t.Fatalf("Sec-WebSocket-Extensions %q: want permessage-deflate with both no_context_takeover", ext)
	}
	c.SetReadLimit(1 << 20)
	typ, data, err := c.Read(ctx)
	var w struct{ Type string }
	if err != nil || typ != websocket.MessageText || json.Unmarshal(data, &w) != nil || w.Type != "welcome" {
		t.Fatalf("welcome: %v %q %v", typ, data, err)
	}
	if m := s.metrics(t); !strings.Contains(m, "turnstile_compressed_connections 1\n") {
		t.Fatalf("/metrics does not count the compressing connection:\n%s", grepLines(m, "turnstile_compressed_connections"))
	}
	for _, p := range [][]byte{
		[]byte(`{"small":true}`),
		bytes.Repeat([]byte(`{"k":"compressible value"},`), 2000),
	} {
		if err := c.Write(ctx, websocket.MessageText, p); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText || !bytes.Equal(got, p) {
			t.Fatalf("echo of %d bytes: %v %d bytes %v", len(p), typ, len(got), err)
		}
	}
	wr, err := c.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i := range 3 {
		part := bytes.Repeat([]byte{byte(i)}, 5000)
		if _, err := wr.Write(part); err != nil {
			t.Fatal(err)
		}
		all = append(all, part...)
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	if typ, got, err := c.Read(ctx); err != nil || typ != websocket.MessageBinary || !bytes.Equal(got, all) {
		t.Fatalf("fragmented compressed echo: %v %d bytes %v", typ, len(got), err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

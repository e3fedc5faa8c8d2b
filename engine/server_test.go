package engine

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

func TestEchoAndClose(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	conn, br, welcome := connect(t, s, st, "maggie")
	if !strings.Contains(welcome, `"user":"maggie"`) || !strings.Contains(welcome, `"conn":"`) {
		t.Fatalf("welcome %s", welcome)
	}
	if _, err := conn.Write(clientFrame(true, ws.OpText, []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	f := readFrame(t, br)
	if f.op != ws.OpText || string(f.payload) != "hello" {
		t.Fatalf("echo %v %q", f.op, f.payload)
	}
	if _, err := conn.Write(clientFrame(true, ws.OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})); err != nil {
		t.Fatal(err)
	}
	expectClose(t, br, 1000)
}

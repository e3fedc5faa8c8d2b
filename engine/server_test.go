package engine

import (
	"bytes"
	"log/slog"
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

func TestGnetErrorsReachTheLogOncePerSecond(t *testing.T) {
	var buf bytes.Buffer
	g := newGnetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	g.Infof("launching %d loops", 2)
	for i := 0; i < 100; i++ {
		g.Errorf("Accept() failed due to error: %v", "too many open files")
	}
	out := buf.String()
	if strings.Contains(out, "launching") {
		t.Errorf("gnet info reached the info log: %s", out)
	}
	if n := strings.Count(out, "too many open files"); n != 1 {
		t.Fatalf("%d warnings in a burst of 100, want exactly 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") {
		t.Errorf("gnet error not at warn level: %s", out)
	}
	g.limiter.last.Store(0) // as if a second had passed
	buf.Reset()
	g.Errorf("Accept() failed due to error: %v", "too many open files")
	if !strings.Contains(buf.String(), "suppressed_since_last=99") {
		t.Errorf("the next warning does not count the 99 suppressed: %s", buf.String())
	}
}

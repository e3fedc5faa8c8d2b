package engine

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

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
	g.now = func() time.Time { return time.Now().Add(time.Second) } // as if a second had passed
	buf.Reset()
	g.Errorf("Accept() failed due to error: %v", "too many open files")
	if !strings.Contains(buf.String(), "suppressed_since_last=99") {
		t.Errorf("the next warning does not count the 99 suppressed: %s", buf.String())
	}
}

// Stop called while Start is still binding must neither race with it nor
// leave the server running.
func TestStopDuringStart(t *testing.T) {
	for i := 0; i < 5; i++ {
		s, err := New(Config{Addr: "127.0.0.1:0", Store: newMemStore()})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error, 1)
		go func() { started <- s.Start() }()
		for !s.started.Load() {
			runtime.Gosched()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("round %d: Stop: %v", i, err)
		}
		cancel()
		if err := <-started; err != nil {
			t.Fatalf("round %d: Start: %v", i, err)
		}
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: gnet still running after Stop returned", i)
		}
		if s.Ready() {
			t.Fatalf("round %d: Ready after Stop", i)
		}
	}
}

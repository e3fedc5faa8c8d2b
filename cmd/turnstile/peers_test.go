package main

// Real peers against the real binary: Node's `ws` package and the
// github.com/coder/websocket Go library each run the full flow (log in,
// ticket, connect, welcome, push received, close) and, against a server
// started with -echo, fragmented and binary messages, pings both ways and a
// close with a code. Neither peer shares code with the engine, so a bug in
// the engine that our own test clients share would show here.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// peerServerArgs start an echo server whose pings and idle timeout are short
// enough to prove, within seconds, that a peer answers pings: it stays
// silent for longer than the idle timeout and must not be closed.
var peerServerArgs = []string{"-echo", "-ping-interval", "500ms", "-idle-timeout", "2s"}

const peerIdle = 3 * time.Second // longer than -idle-timeout above

// ---------------------------------------------------------------------------
// Node's ws
// ---------------------------------------------------------------------------

// nodePeer returns the path of client.js, skipping (or failing in CI) when
// node or the locked node_modules are missing.
func nodePeer(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "peers"))
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		missing = "node_modules missing: run `npm ci` in cmd/turnstile/testdata/peers"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Node peer cannot run in CI: %s", missing)
		}
		t.Skip("Node peer: " + missing)
	}
	return filepath.Join(dir, "client.js")
}

type peerStep struct {
	Step  string `json:"step"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Code  int    `json:"code"`
	Pings int    `json:"pings"`
}

// runNode runs client.js and returns its steps, failing the test on a
// failed step, a non-zero exit or a missing step.
func runNode(t *testing.T, script string, env []string, args []string, wantSteps ...string) []peerStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var steps []peerStep
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var s peerStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Errorf("node printed %q", sc.Text())
			continue
		}
		steps = append(steps, s)
		if !s.OK {
			t.Errorf("node step %s failed: %s", s.Step, s.Error)
		}
	}
	if runErr != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", args[0], runErr, stdout.String(), stderr.String())
	}
	done := map[string]bool{}
	for _, s := range steps {
		done[s.Step] = s.OK
	}
	for _, w := range wantSteps {
		if !done[w] {
			t.Errorf("node never completed step %q; output:\n%s", w, stdout.String())
		}
	}
	return steps
}

func stepNamed(steps []peerStep, name string) peerStep {
	for _, s := range steps {
		if s.Step == name {
			return s
		}
	}
	return peerStep{}
}

func TestPeerNodeFlow(t *testing.T) {
	script := nodePeer(t)
	s := startBinary(t)
	steps := runNode(t, script, nil, []string{"flow", s.HTTP, "maggie", "secret", s.PublishKey},
		"login", "ticket", "welcome", "publish", "push", "close")
	if c := stepNamed(steps, "close").Code; c != 1000 {
		t.Errorf("close echoed %d, want 1000", c)
	}
}

func TestPeerNodeEcho(t *testing.T) {
	script := nodePeer(t)
	s := startBinary(t, peerServerArgs...)
	steps := runNode(t, script, []string{fmt.Sprintf("PEER_IDLE_MS=%d", peerIdle.Milliseconds())},
		[]string{"echo", s.HTTP, "maggie", "secret"},
		"welcome", "text", "binary", "fragmented text", "fragmented binary", "large text",
		"ping", "server pings answered", "alive after idle", "close")
	if c := stepNamed(steps, "close").Code; c != 4000 {
		t.Errorf("close echoed %d, want 4000", c)
	}
	t.Logf("node answered %d server pings while idle", stepNamed(steps, "server pings answered").Pings)
}

// ---------------------------------------------------------------------------
// github.com/coder/websocket
// ---------------------------------------------------------------------------

// goPeerDial runs login and ticket through the HTTP API and dials the URL
// the server hands out, returning the connection after its welcome.
func goPeerDial(t *testing.T, s *testServer, ctx context.Context) *websocket.Conn {
	t.Helper()
	token := s.Login(t, "maggie", "secret")
	tk, url := s.Ticket(t, token)
	if !strings.Contains(url, tk) {
		t.Fatalf("ticket URL does not carry the ticket")
	}
	c, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.SetReadLimit(1 << 20)
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	var w struct{ Type, User, Conn string }
	if typ != websocket.MessageText || json.Unmarshal(data, &w) != nil || w.Type != "welcome" || w.User != "maggie" || w.Conn == "" {
		t.Fatalf("welcome: %v %q", typ, data)
	}
	return c
}

func TestPeerGoFlow(t *testing.T) {
	s := startBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := goPeerDial(t, s, ctx)
	if n := s.Publish(t, `{"user":"maggie","data":{"hello":"from go"}}`); n < 1 {
		t.Fatalf("publish reached %d", n)
	}
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	var push struct {
		Type string
		Data struct{ Hello string }
	}
	if typ != websocket.MessageText || json.Unmarshal(data, &push) != nil || push.Type != "message" || push.Data.Hello != "from go" {
		t.Fatalf("push: %v %q", typ, data)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

func TestPeerGoEcho(t *testing.T) {
	s := startBinary(t, peerServerArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := goPeerDial(t, s, ctx)

	expect := func(step string, typ websocket.MessageType, want []byte) {
		t.Helper()
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if gotTyp != typ || !bytes.Equal(got, want) {
			t.Fatalf("%s: got %v %d bytes, want %v %d bytes", step, gotTyp, len(got), typ, len(want))
		}
	}
	write := func(typ websocket.MessageType, p []byte) {
		t.Helper()
		if err := c.Write(ctx, typ, p); err != nil {
			t.Fatal(err)
		}
	}
	// fragmented writes one frame per Write and the final frame on Close.
	fragmented := func(typ websocket.MessageType, parts ...[]byte) []byte {
		t.Helper()
		w, err := c.Writer(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p...)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return all
	}

	write(websocket.MessageText, []byte("hello, echo"))
	expect("text", websocket.MessageText, []byte("hello, echo"))
	write(websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff})
	expect("binary", websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff})
	all := fragmented(websocket.MessageText, []byte("frag-one|"), []byte("κ"[:1]), []byte("κ"[1:]+"όσμε|"), []byte("frag-three"))
	expect("fragmented text", websocket.MessageText, all)
	part := bytes.Repeat([]byte{7}, 3000)
	all = fragmented(websocket.MessageBinary, part, part, part)
	expect("fragmented binary", websocket.MessageBinary, all)
	large := bytes.Repeat([]byte("x"), 60000)
	write(websocket.MessageText, large)
	expect("large text", websocket.MessageText, large)

	// Pings both ways need a reader running: the library answers the
	// server's pings and matches our pong inside Read. Keep one Read in
	// flight while we ping and then stay silent past the idle timeout.
	type readResult struct {
		typ  websocket.MessageType
		data []byte
		err  error
	}
	got := make(chan readResult, 1)
	go func() {
		typ, data, err := c.Read(ctx)
		got <- readResult{typ, data, err}
	}()
	pingCtx, pingCancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.Ping(pingCtx)
	pingCancel()
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	time.Sleep(peerIdle)
	write(websocket.MessageText, []byte("still here"))
	r := <-got
	if r.err != nil || r.typ != websocket.MessageText || string(r.data) != "still here" {
		t.Fatalf("after %v idle (server pings answered by the library): %v %q %v", peerIdle, r.typ, r.data, r.err)
	}

	if err := c.Close(websocket.StatusCode(4000), "bye from go"); err != nil {
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 {
			t.Fatalf("close 4000: %v", err)
		}
	}
}

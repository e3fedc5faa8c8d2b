package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireTool skips (or, in CI, fails) when a tool the test drives is absent.
func requireTool(t *testing.T, path, install string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: %s", path, install)
		}
		t.Skipf("%s is missing (%s); .ci/run installs it", path, install)
	}
}

// requireNode returns node's path; absent, it skips, or fails in CI.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is missing in CI")
		}
		t.Skip("node is not installed")
	}
	return node
}

// browser is headless Chromium driven through testdata/browser/driver.js:
// one JSON command per line in, one JSON answer per line out.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    chan string
	stderr *lockedBuffer
}

// startBrowser launches Chromium; it is closed at the end of the test.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	dir, _ := filepath.Abs("testdata/browser")
	requireTool(t, "/usr/bin/chromium", "apt-get install chromium")
	requireTool(t, filepath.Join(dir, "node_modules", "playwright-core"), "npm ci in "+dir)
	node := requireNode(t)
	b := &browser{t: t, out: make(chan string, 16), stderr: &lockedBuffer{}}
	b.cmd = exec.Command(node, "driver.js")
	b.cmd.Dir = dir
	b.cmd.Stderr = b.stderr
	var err error
	if b.in, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			b.out <- sc.Text()
		}
		close(b.out)
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(b.in, `{"op":"quit"}`+"\n")
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("browser log:\n%s", b.stderr.String())
		}
	})
	return b
}

// do sends one command and returns its value; a failed command fails the test.
func (b *browser) do(cmd map[string]any) json.RawMessage {
	b.t.Helper()
	v, err := b.try(cmd)
	if err != "" {
		b.t.Fatalf("browser %v: %s", cmd["op"], err)
	}
	return v
}

// try sends one command and returns its value or its error text.
func (b *browser) try(cmd map[string]any) (json.RawMessage, string) {
	b.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		b.t.Fatalf("browser driver gone: %v\n%s", err, b.stderr.String())
	}
	select {
	case l, ok := <-b.out:
		if !ok {
			b.t.Fatalf("browser driver ended:\n%s", b.stderr.String())
		}
		var ans struct {
			OK    bool            `json:"ok"`
			Value json.RawMessage `json:"value"`
			Error string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &ans); err != nil {
			b.t.Fatalf("browser driver said %q", l)
		}
		if !ans.OK {
			return nil, ans.Error
		}
		return ans.Value, ""
	case <-time.After(90 * time.Second):
		b.t.Fatalf("browser driver silent for 90s on %s:\n%s", line, b.stderr.String())
	}
	return nil, ""
}

// wait waits until the page expression js is truthy and decodes its value into out.
func (b *browser) wait(js string, timeout time.Duration, out any) {
	b.t.Helper()
	v, err := b.try(map[string]any{"op": "wait", "js": js, "timeout": timeout.Milliseconds()})
	if err != "" {
		events := b.do(map[string]any{"op": "eval", "js": "JSON.stringify(window.demo && demo.events)"})
		b.t.Fatalf("waiting for %s: %s\nevents: %s", js, err, events)
	}
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			b.t.Fatalf("decoding %s: %v", v, err)
		}
	}
}

// eval decodes the value of a page expression into out.
func (b *browser) eval(js string, out any) {
	b.t.Helper()
	v := b.do(map[string]any{"op": "eval", "js": js})
	if err := json.Unmarshal(v, out); err != nil {
		b.t.Fatalf("decoding %s: %v", v, err)
	}
}

// browserStats is what the driver counted on the page.
type browserStats struct {
	Requests      map[string]int `json:"requests"`
	ConsoleErrors []string       `json:"consoleErrors"`
	PageErrors    []string       `json:"pageErrors"`
}

func (b *browser) stats() browserStats {
	b.t.Helper()
	var s browserStats
	if err := json.Unmarshal(b.do(map[string]any{"op": "stats"}), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// lockedBuffer collects the driver's stderr while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBrowserProtocolTicketAndOriginBinding runs DESIGN 1.7 in Chromium:
// new WebSocket(url, ["turnstile.v1", "turnstile.ticket.<t>"]) is admitted
// and sees protocol turnstile.v1; a ticket taken by a page at one Origin is
// refused from a page at another (and spent: its own page is refused after).
func TestBrowserProtocolTicketAndOriginBinding(t *testing.T) {
	dir, _ := filepath.Abs("testdata/browser")
	requireTool(t, "/usr/bin/chromium", "apt-get install chromium")
	requireTool(t, filepath.Join(dir, "node_modules", "playwright-core"), "npm ci in "+dir)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	s := startBinary(t)
	other := strings.Replace(s.HTTP, "127.0.0.1", "localhost", 1) // same server, another Origin
	cmd := exec.Command(node, "protocol.js", s.HTTP, other)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("protocol.js: %v\n%s", err, stderr.String())
	}
	type seen struct {
		Protocol *string
		Welcome  map[string]any
		Close    int
	}
	var got struct{ ViaProtocol, CrossOrigin, SameOriginAfter seen }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if p := got.ViaProtocol; p.Protocol == nil || *p.Protocol != "turnstile.v1" || p.Welcome["user"] != "maggie" {
		t.Errorf("ticket as subprotocol: %+v, want protocol turnstile.v1 and maggie's welcome", p)
	}
	if c := got.CrossOrigin; c.Welcome != nil || c.Close != 1006 {
		t.Errorf("bound ticket from another Origin: %+v, want refused (1006)", c)
	}
	if c := got.SameOriginAfter; c.Welcome != nil || c.Close != 1006 {
		t.Errorf("the refused ticket from its own Origin: %+v, want refused (spent)", c)
	}
	if logs := s.Logs(); strings.Contains(logs, "turnstile.ticket.") {
		t.Error("the offered subprotocols reached the log")
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestBrowserReceivesPush drives Debian's Chromium through the -dev demo
// page: log in, trade the token for a ticket, connect, and show a push.
func TestBrowserReceivesPush(t *testing.T) {
	dir, _ := filepath.Abs("testdata/browser")
	requireTool(t, "/usr/bin/chromium", "apt-get install chromium")
	requireTool(t, filepath.Join(dir, "node_modules", "playwright-core"), "npm ci in "+dir)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	s := startBinary(t)
	cmd := exec.Command(node, "browser.js", s.HTTP, "pushed-to-the-browser")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("browser script ended early:\n%s", stderr.String())
			}
			return l
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("browser script silent for 60s:\n%s", stderr.String())
		}
		return ""
	}
	if l := next(); l != "READY" {
		t.Fatalf("want READY, got %q", l)
	}
	if n := s.Publish(t, `{"user":"maggie","data":"pushed-to-the-browser"}`); n != 1 {
		t.Fatalf("recipients %d, want 1", n)
	}
	if l := next(); !strings.Contains(l, `"type":"message"`) || !strings.Contains(l, "pushed-to-the-browser") {
		t.Fatalf("browser showed %q", l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser script: %v\n%s", err, stderr.String())
	}
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

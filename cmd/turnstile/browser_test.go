package main

import (
	"bufio"
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

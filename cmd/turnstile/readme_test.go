package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is a shell block of README.md marked for testing by the
// HTML comment "<!-- readme-test -->" (or "<!-- readme-test: server -->"
// for a block that starts a server in the foreground) on the line above.
type readmeBlock struct {
	line   int    // of the opening fence
	mode   string // "" or "server"
	script string
	expect []string // "# ⇒ …" lines: what the output must contain, … matching anything
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test(?:: (\w+))? -->$`)

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		m := readmeMarker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			t.Fatalf("README.md:%d: a readme-test marker must stand right above a ```sh block", i+1)
		}
		b := readmeBlock{line: i + 2, mode: m[1]}
		var script []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			script = append(script, lines[i])
			if e, ok := strings.CutPrefix(lines[i], "# ⇒ "); ok {
				b.expect = append(b.expect, e)
			}
		}
		b.script = strings.Join(script, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// expectation turns "{"ticket":"…"}" into a regexp where … matches anything.
func expectation(s string) *regexp.Regexp {
	parts := strings.Split(s, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, ".*"))
}

// TestReadmeCommands runs every marked shell block of README.md, in order,
// against a fresh build of turnstile and turnstile-load on PATH, in one
// temporary directory (standing in for /etc/turnstile too), with a -dev
// server on free loopback ports standing in for localhost:8080 and :8081.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds both binaries and runs a small load test")
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 4 {
		t.Fatalf("only %d marked blocks in README.md: the markers were lost", len(blocks))
	}
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/turnstile", "./cmd/turnstile-load")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dev := startBinary(t)
	httpAddr := strings.TrimPrefix(dev.HTTP, "http://")
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(dev.WS, "ws://"), "/ws")
	rewrite := strings.NewReplacer("localhost:8080", httpAddr, "localhost:8081", wsAddr,
		"/etc/turnstile", filepath.Join(work, "etc", "turnstile"))
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + work, "PUBLISH_KEY=" + dev.PublishKey,
		"TURNSTILE_HTTP=127.0.0.1:0", "TURNSTILE_WS=127.0.0.1:0", "LANG=C.UTF-8"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TURNSTILE_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	for _, b := range blocks {
		script := rewrite.Replace(b.script)
		name := fmt.Sprintf("README.md:%d", b.line)
		var out []byte
		switch b.mode {
		case "":
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
			cmd.Dir, cmd.Env = work, env
			var err error
			out, err = cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("%s failed: %v\n--- script\n%s--- output\n%s", name, err, script, out)
			}
		case "server":
			out = runServerBlock(t, name, script, work, env)
		default:
			t.Fatalf("%s: unknown readme-test mode %q", name, b.mode)
		}
		for _, e := range b.expect {
			if re := expectation(rewrite.Replace(e)); !re.Match(out) {
				t.Errorf("%s: output lacks %q\n--- output\n%s", name, e, out)
			}
		}
	}
}

// runServerBlock runs a block that ends by starting turnstile in the
// foreground: it must come up and answer /healthz, then SIGTERM stops it
// cleanly.
func runServerBlock(t *testing.T, name, script, dir string, env []string) []byte {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	output := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	listening := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`msg="turnstile listening" http=(\S+)`)
		for sc.Scan() {
			mu.Lock()
			buf.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
		close(done)
	}()
	exited := make(chan error, 1)
	go func() { <-done; exited <- cmd.Wait() }()
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	select {
	case addr := <-listening:
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: the server it started does not answer /healthz: %v", name, err)
		}
		resp.Body.Close()
	case <-exited:
		t.Fatalf("%s exited before listening:\n--- script\n%s--- output\n%s", name, script, output())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no server within 60s:\n%s", name, output())
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still running 30s after SIGTERM", name)
	}
	if !strings.Contains(output(), "msg=stopped") {
		t.Fatalf("%s: no clean stop after SIGTERM:\n%s", name, output())
	}
	return []byte(output())
}

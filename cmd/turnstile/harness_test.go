package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaryPath is the turnstile binary built once for this package's tests.
var binaryPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "turnstile-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binaryPath = filepath.Join(dir, "turnstile")
	build := exec.Command("go", "build", "-race", "-o", binaryPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building turnstile:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testPublishKey is the -publish-key every test server gets.
const testPublishKey = "test-publish-key-0123456789"

// testServer is the real binary running on free loopback ports.
type testServer struct {
	HTTP       string // http://127.0.0.1:port
	WS         string // ws://127.0.0.1:port/ws
	PublishKey string

	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
	err    error
}

// startBinary starts turnstile with -dev on 127.0.0.1:0 for both listeners,
// plus args, and waits for its start line. The process is killed at the end
// of the test if still running.
func startBinary(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startCommand(t, nil, args...)
}

// startBinaryArgs is startBinary without -dev: args must name a key.
func startBinaryArgs(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startProcess(t, nil, args...)
}

// startCommand is startBinary with the binary run through prefix, a
// command that ends by exec'ing its first argument with the rest (e.g.
// sh -c 'ulimit -n 256; exec "$0" "$@"'); nil runs the binary directly.
func startCommand(t *testing.T, prefix []string, args ...string) *testServer {
	t.Helper()
	return startProcess(t, prefix, append([]string{"-dev"}, args...)...)
}

// startProcess is startCommand without -dev.
func startProcess(t *testing.T, prefix []string, args ...string) *testServer {
	t.Helper()
	all := append([]string{"-http", "127.0.0.1:0", "-ws", "127.0.0.1:0",
		"-log-format", "json", "-log-level", "debug", "-publish-key", testPublishKey}, args...)
	s := &testServer{PublishKey: testPublishKey, exited: make(chan struct{})}
	argv := append(append(append([]string(nil), prefix...), binaryPath), all...)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	s.cmd.Stdout = io.Discard
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.mu.Lock()
			s.logs.Write(line)
			s.logs.WriteByte('\n')
			s.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "turnstile listening" {
				started <- rec
			}
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Logs())
		}
	})
	select {
	case rec := <-started:
		s.HTTP = "http://" + rec["http"].(string)
		s.WS = "ws://" + rec["ws"].(string) + "/ws"
	case <-s.exited:
		t.Fatalf("turnstile exited before listening: %v\n%s", s.err, s.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("turnstile did not start within 30s\n%s", s.Logs())
	}
	return s
}

// Logs returns everything the server wrote to stderr so far.
func (s *testServer) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Signal sends sig to the server process.
func (s *testServer) Signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Wait waits up to d for the process to exit and returns its exit code.
func (s *testServer) Wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("turnstile still running %v after the signal", d)
		return -1
	}
}

// metrics returns the /metrics page; anything but 200 fails the test.
func (s *testServer) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// answer is one HTTP response, read whole.
type answer struct {
	code int
	hdr  http.Header
	body []byte
}

// errorText is the "error" of a JSON error body, or "" if there is none.
func (a answer) errorText() string {
	var e struct{ Error string }
	_ = json.Unmarshal(a.body, &e)
	return e.Error
}

// call sends a request with optional bearer and X-Forwarded-For and reads the answer.
func (s *testServer) call(t *testing.T, method, path, bearer, from, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.HTTP+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if from != "" {
		req.Header.Set("X-Forwarded-For", from)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, data}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (s *testServer) do(t *testing.T, method, path, bearer, body string, out any) int {
	t.Helper()
	a := s.call(t, method, path, bearer, "", body)
	if out != nil && a.code == http.StatusOK {
		if err := json.Unmarshal(a.body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, a.body)
		}
	}
	return a.code
}

// Login returns a token for user, failing the test on anything but 200.
func (s *testServer) Login(t *testing.T, user, pwd string) string {
	t.Helper()
	var out struct{ Token string }
	body, _ := json.Marshal(map[string]string{"user": user, "pwd": pwd})
	if code := s.do(t, "POST", "/auth", "", string(body), &out); code != http.StatusOK || out.Token == "" {
		t.Fatalf("login %s: status %d", user, code)
	}
	return out.Token
}

// Ticket trades a token for a ticket and the URL to connect to.
func (s *testServer) Ticket(t *testing.T, token string) (tkt, url string) {
	t.Helper()
	code, tkt, url := s.ticketStatus(t, token, "")
	if code != http.StatusOK || tkt == "" {
		t.Fatalf("ws_ticket: status %d", code)
	}
	return tkt, url
}

// ticketStatus asks /ws_ticket with token (and Origin, if not empty) and
// returns the status and, on 200, the ticket and URL.
func (s *testServer) ticketStatus(t *testing.T, token, origin string) (status int, tkt, url string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.HTTP+"/ws_ticket", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Ticket, URL string }
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out.Ticket, out.URL
}

// Publish posts body to /publish with the server's key and returns the
// number of recipients.
func (s *testServer) Publish(t *testing.T, body string) int {
	t.Helper()
	var out struct{ Recipients int }
	if code := s.do(t, "POST", "/publish", s.PublishKey, body, &out); code != http.StatusOK {
		t.Fatalf("publish %s: status %d", body, code)
	}
	return out.Recipients
}

// configFailure runs the binary with args and an empty environment, which
// must refuse the configuration: exit status 2. It returns the output.
func configFailure(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(binaryPath, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("err %v, want exit status 2; output %s", err, out)
	}
	return out
}

package main

import (
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// serverSndbuf returns the kernel's send buffer size (ss -tm "tb") of the
// server's side of every established connection on local port.
func serverSndbuf(t *testing.T, port string) []int {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ss (iproute2) is required in CI")
		}
		t.Skip("ss not found: apt-get install iproute2")
	}
	out, err := exec.Command("ss", "-Htmn", "state", "established", "sport", "= :"+port).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var sizes []int
	for _, m := range regexp.MustCompile(`tb(\d+)`).FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[1])
		sizes = append(sizes, n)
	}
	return sizes
}

func wsPort(s *testServer) string {
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(s.WS, "ws://"), "/ws"))
	return port
}

// -send-buffer-bytes sets SO_SNDBUF on every WebSocket connection (Linux
// reports twice the value), bounding the kernel memory a client that stops
// reading can pin; 0 leaves the kernel's autotuning.
func TestEndToEndSendBufferBytes(t *testing.T) {
	s := startBinary(t, "-send-buffer-bytes", "32768")
	connect(t, s, "maggie", "secret")
	connect(t, s, "maggie", "secret")
	sizes := serverSndbuf(t, wsPort(s))
	if len(sizes) != 2 {
		t.Fatalf("ss found %d server sockets, want 2 (%v)", len(sizes), sizes)
	}
	for _, n := range sizes {
		if n != 2*32768 {
			t.Errorf("server socket send buffer %d, want %d (2 x 32768)", n, 2*32768)
		}
	}

	s0 := startBinary(t, "-send-buffer-bytes", "0")
	connect(t, s0, "maggie", "secret")
	if sizes := serverSndbuf(t, wsPort(s0)); len(sizes) != 1 || sizes[0] == 2*32768 {
		t.Errorf("with -send-buffer-bytes 0 the send buffer is %v, want the kernel's own", sizes)
	}
}

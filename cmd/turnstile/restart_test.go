package main

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// timeWaitOn counts the TCP sockets in TIME_WAIT on local port (via ss),
// or -1 when ss is not there.
func timeWaitOn(port string) int {
	out, err := exec.Command("ss", "-Htan", "state", "time-wait", "sport", "= :"+port).Output()
	if err != nil {
		return -1
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

// requireTimeWait fails when ss shows no TIME_WAIT on port: the restart
// would then prove nothing.
func requireTimeWait(t *testing.T, port, when string) {
	t.Helper()
	switch n := timeWaitOn(port); n {
	case -1:
		t.Logf("ss (iproute2) not found: TIME_WAIT on :%s %s not checked", port, when)
	case 0:
		t.Fatalf("no socket in TIME_WAIT on :%s %s: the restart would prove nothing", port, when)
	default:
		t.Logf("%d sockets in TIME_WAIT on :%s %s", n, port, when)
	}
}

// serverClosesOne makes the server end a connection itself (a protocol
// error closes TCP at once), which leaves its side in TIME_WAIT.
func serverClosesOne(t *testing.T, s *testServer) {
	t.Helper()
	c := connect(t, s, "maggie", "secret")
	if _, err := c.conn.Write([]byte{0x81, 0x01, 'x'}); err != nil {
		t.Fatal(err)
	}
	// Read raw to the end: a WebSocket reader would answer the close into
	// a closed socket, and the reset would end the TIME_WAIT.
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(c.rw)
	if err != nil || !bytes.HasPrefix(rest, []byte{0x88}) || !bytes.Contains(rest, []byte{0x03, 0xea}) {
		t.Fatalf("got %q, %v; want close 1002 then EOF", rest, err)
	}
	c.conn.Close()
}

// The server restarts on its WebSocket port at once, with the last run's
// connections still in TIME_WAIT: after it closed connections itself and
// exited on SIGTERM, and after kill -9 with a client connected.
func TestEndToEndRestartOnSamePort(t *testing.T) {
	s := startBinary(t)
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(s.WS, "ws://"), "/ws"))
	wsAddr := "127.0.0.1:" + port
	serverClosesOne(t, s)
	serverClosesOne(t, s)
	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	requireTimeWait(t, port, "after SIGTERM")

	s2 := startBinary(t, "-ws", wsAddr)
	serverClosesOne(t, s2)
	c := connect(t, s2, "maggie", "secret")
	if err := s2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s2.Wait(t, 30*time.Second)
	c.conn.Close()
	requireTimeWait(t, port, "after kill -9")

	s3 := startBinary(t, "-ws", wsAddr)
	connect(t, s3, "maggie", "secret")
}

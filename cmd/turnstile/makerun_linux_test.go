package main

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRunExitsZeroOnCtrlC runs "make run ARGS=…" on a terminal as a
// person would, waits for the server, types Ctrl-C, and expects the server
// to drain and make to exit 0 without an error line. ARGS must reach the
// server: it listens where ARGS says.
func TestMakeRunExitsZeroOnCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary through make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	ctl, tty := openPty(t)
	cmd := exec.Command("make", "--no-print-directory", "run", "ARGS=-http 127.0.0.1:0 -ws 127.0.0.1:0")
	cmd.Dir = "../.."
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	screen := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ctl.Read(buf)
			if n > 0 {
				screen <- string(buf[:n])
			}
			if err != nil {
				close(screen)
				return
			}
		}
	}()
	var out strings.Builder
	// drain takes what the terminal shows within a short while (our side
	// keeps it open, so it never ends by itself).
	drain := func() {
		for {
			select {
			case s, ok := <-screen:
				if !ok {
					return
				}
				out.WriteString(s)
			case <-time.After(500 * time.Millisecond):
				return
			}
		}
	}
	waitFor := func(re *regexp.Regexp, d time.Duration) {
		t.Helper()
		deadline := time.After(d)
		for !re.MatchString(out.String()) {
			select {
			case s, ok := <-screen:
				if !ok {
					t.Fatalf("terminal closed before %s:\n%s", re, out.String())
				}
				out.WriteString(s)
			case <-exited:
				if drain(); !re.MatchString(out.String()) {
					t.Fatalf("make run exited (%v) before %s:\n%s", waitErr, re, out.String())
				}
			case <-deadline:
				t.Fatalf("no %s within %v:\n%s", re, d, out.String())
			}
		}
	}
	waitFor(regexp.MustCompile(`publish key \(this run only\)`), 3*time.Minute)
	if !regexp.MustCompile(`msg="turnstile listening" http=127\.0\.0\.1:\d+ ws=127\.0\.0\.1:\d+`).MatchString(out.String()) {
		t.Fatalf("ARGS did not reach the server:\n%s", out.String())
	}
	if _, err := ctl.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	waitFor(regexp.MustCompile(`msg=stopped`), 30*time.Second)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("make run after Ctrl-C: %v, want exit 0\n%s", waitErr, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("make run still running 30s after Ctrl-C:\n%s", out.String())
	}
	drain()
	if strings.Contains(out.String(), "Error") || strings.Contains(out.String(), "Interrupt") {
		t.Fatalf("make reported a failure after a clean Ctrl-C:\n%s", out.String())
	}
}

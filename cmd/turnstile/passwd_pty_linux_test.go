package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty returns a pseudo-terminal's controller and its terminal side.
func openPty(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// TestPasswdPromptsWithoutEcho types the password twice on a terminal and
// checks that it never appears on the screen and that it is what was saved.
func TestPasswdPromptsWithoutEcho(t *testing.T) {
	ctl, tty := openPty(t)
	path := filepath.Join(t.TempDir(), "users")
	cmd := exec.Command(binaryPath, "passwd", "-cost", "4", path, "maggie")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	screen := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 512)
		for {
			n, err := ctl.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil || strings.Contains(string(all), "SIGHUP") {
				break
			}
		}
		screen <- string(all)
	}()
	waitFor := func(prompt string) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			// The prompt is written before echo is turned off; typing before
			// that would echo, so wait until the terminal is quiet.
			tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
			if err == nil && tio.Lflag&unix.ECHO == 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no %s prompt with echo off", prompt)
	}
	waitFor("first")
	ctl.WriteString("typed-secret\n")
	time.Sleep(100 * time.Millisecond) // the second read turns echo off again
	waitFor("second")
	ctl.WriteString("typed-secret\n")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("passwd on a terminal: %v", err)
	}
	var out string
	select {
	case out = <-screen:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output never finished")
	}
	if strings.Contains(out, "typed-secret") {
		t.Fatalf("the password was echoed:\n%q", out)
	}
	if !strings.Contains(out, "New password for maggie") || !strings.Contains(out, "Retype") {
		t.Fatalf("prompts missing:\n%q", out)
	}
	if err := verify(t, path, "maggie", "typed-secret"); err != nil {
		t.Fatal(err)
	}
	if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Fatalf("echo not restored on the terminal (%v)", err)
	}
}

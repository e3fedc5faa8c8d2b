package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestCPUProfileWindow: with TURNSTILE_CPUPROFILE set, the first SIGUSR1
// starts a profile and the second writes it out.
func TestCPUProfileWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stop := startCPUProfiler(func(k string) string {
		if k == cpuProfileEnv {
			return path
		}
		return ""
	}, log)
	defer stop()
	self, _ := os.FindProcess(os.Getpid())
	_ = self.Signal(syscall.SIGUSR1)
	waitFile(t, path, false)
	_ = self.Signal(syscall.SIGUSR1)
	waitFile(t, path, true)
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("not a CPU profile (gzipped protobuf): %d bytes, %v", len(b), err)
	}
}

// waitFile waits until path exists and, with nonEmpty, holds bytes.
func waitFile(t *testing.T, path string, nonEmpty bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st, err := os.Stat(path); err == nil && (!nonEmpty || st.Size() > 0) {
			return
		}
	}
	t.Fatalf("%s not written (non-empty: %v)", path, nonEmpty)
}

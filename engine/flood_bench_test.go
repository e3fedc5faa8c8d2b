package engine_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkEchoUnderFlood measures a well-behaved client's echo round trip
// on a loop it shares with a flooding client (one event loop), beside the
// same run without the flooder: the ratio of the p99s is what one client's
// flood costs the others. The flooder is another process
// (TestFloodHelperProcess). proc-run/wall and proc-wait/wall (cpuWait)
// say whether the server had a CPU while it was measured. To take the
// flooder off the server's CPU, pin both:
//
//	go test -run '^$' -bench EchoUnderFlood -benchtime 3000x ./engine
//	go test -c ./engine && TURNSTILE_FLOOD_CPU=1 taskset -c 0 ./engine.test \
//		-test.run '^$' -test.bench EchoUnderFlood -test.benchtime 3000x
func BenchmarkEchoUnderFlood(b *testing.B) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"quiet", nil},
		{"ping-flood", pingFrame(nil)},
		{"1-byte-text-flood", textFrame("x")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := echoConfig(64 << 10)
			cfg.Loops = 1
			s := startServer(b, cfg)
			victim := dialWS(b, s, "victim")
			if tc.frame != nil {
				stop := startFlooder(b, s, tc.name)
				defer stop()
				time.Sleep(300 * time.Millisecond) // let the flood build up
			}
			msg := textFrame("0123456789abcdef0123456789abcdef")
			lat := make([]time.Duration, 0, b.N)
			run0, wait0 := cpuWait()
			t0 := time.Now()
			for b.Loop() {
				start := time.Now()
				if err := victim.send(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := victim.readMessage(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			wall := time.Since(t0)
			run, wait := cpuWait()
			run, wait = run-run0, wait-wait0
			b.ReportMetric(float64(run)/float64(wall), "proc-run/wall")
			b.ReportMetric(float64(wait)/float64(wall), "proc-wait/wall")
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// startFlooder runs the flood in a child process (this test binary, in
// TestFloodHelperProcess), so that it competes with the server for the
// CPU as another client would, not for this process's scheduler. It
// returns a function that stops it.
func startFlooder(b *testing.B, s *testServer, kind string) func() {
	// Enough tickets for the whole run: the server cuts a flooder that
	// outruns its turns (input_flood) and the flooder reconnects.
	var tickets []string
	for range floodTickets {
		tickets = append(tickets, s.issue(b, "flooder"))
	}
	file := filepath.Join(b.TempDir(), "tickets")
	if err := os.WriteFile(file, []byte(strings.Join(tickets, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodHelperProcess$")
	if cpu := os.Getenv("TURNSTILE_FLOOD_CPU"); cpu != "" {
		cmd = exec.Command("taskset", "-c", cpu, os.Args[0], "-test.run=^TestFloodHelperProcess$")
	}
	cmd.Env = append(os.Environ(), "TURNSTILE_FLOOD_ADDR="+s.addr, "TURNSTILE_FLOOD_KIND="+kind,
		"TURNSTILE_FLOOD_TICKETS="+file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		select {
		case <-done:
			b.Fatal("the flooder stopped before the measurement ended (out of tickets?): part of it was quiet")
		default:
		}
		_ = cmd.Process.Kill()
		<-done
	}
}

// floodTickets is how many connections the flooder may open.
const floodTickets = 20000

// TestFloodHelperProcess is the flooder of BenchmarkEchoUnderFlood; it does
// nothing unless started by it. It reads what it is sent (so it is not cut
// as a slow consumer), writes batches of 4096 frames as fast as the server
// takes them, reconnects with the next ticket when closed, and stops after
// a minute at most.
func TestFloodHelperProcess(t *testing.T) {
	addr := os.Getenv("TURNSTILE_FLOOD_ADDR")
	if addr == "" {
		t.Skip("the flooder of BenchmarkEchoUnderFlood")
	}
	frame := pingFrame(nil)
	if os.Getenv("TURNSTILE_FLOOD_KIND") == "1-byte-text-flood" {
		frame = textFrame("x")
	}
	batch := bytes.Repeat(frame, 4096)
	deadline := time.Now().Add(time.Minute)
	list, err := os.ReadFile(os.Getenv("TURNSTILE_FLOOD_TICKETS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range strings.Split(string(list), "\n") {
		conn, err := net.DialTimeout("tcp", addr, ioWait)
		if err != nil {
			return
		}
		if _, err := conn.Write(upgradeRequest("/ws", tk)); err != nil {
			conn.Close()
			continue
		}
		go func() { _, _ = io.Copy(io.Discard, conn) }()
		for time.Now().Before(deadline) {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write(batch); err != nil {
				break
			}
		}
		conn.Close()
		if time.Now().After(deadline) {
			return
		}
	}
}

// cpuWait sums, over this process's threads, the time they ran and the time
// they were runnable but waited for a CPU (Linux schedstat; zero
// elsewhere). Reported per wall second beside the p99s, it tells a loop
// that has too much work (run near the loops' count) from a machine that
// has no CPU to give it (wait as large as run).
func cpuWait() (run, wait time.Duration) {
	dirs, _ := filepath.Glob("/proc/self/task/*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		var r, w int64
		if _, err := fmt.Sscan(string(b), &r, &w); err == nil {
			run += time.Duration(r)
			wait += time.Duration(w)
		}
	}
	return run, wait
}

package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as its own worker process, as the
// turnstile-load binary does.
func TestMain(m *testing.M) {
	if IsWorker() {
		os.Exit(RunWorker(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func metric(t *testing.T, r Result, name string) float64 {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("%s %s: no metric %q in %+v", r.Server, r.Scenario, name, r.Metrics)
	return 0
}

// TestRunEveryScenario drives every scenario through real worker
// processes against the fake server and checks the counts add up.
func TestRunEveryScenario(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll client needs Linux")
	}
	f := newFakeServer(t)
	cfg := DefaultConfig()
	cfg.HTTPAddr, cfg.WSAddr, cfg.PublishKey = f.httpAddr, f.wsAddr, "key"
	cfg.ServerPID = os.Getpid() // the fake runs in this process
	cfg.Scenarios = knownScenarios
	cfg.Conns, cfg.InFlight, cfg.Sources = 40, 8, 4
	cfg.Duration, cfg.Hold, cfg.Messages, cfg.Interval = 300*time.Millisecond, 100*time.Millisecond, 3, 20*time.Millisecond
	cfg.Timeout = 30 * time.Second
	cfg.HTMLPath = t.TempDir() + "/report.html"
	for _, s := range []string{"connect.open conns>=40", "fanout.delivered>=100", "connect.open conns>40", "reject.rate>0", "echo.p99<10s"} {
		th, err := ParseThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Thresholds = append(cfg.Thresholds, th)
	}
	// Exactly 40 connections open, so "more than 40" must be missed: the
	// run still writes every report, then fails with ErrThresholds.
	results, table, progress := runResults(t, cfg, ErrThresholds)
	for _, want := range []string{"✓ connect.open conns>=40", "✓ fanout.delivered>=100", "✓ reject.rate>0", "✓ echo.p99<10s", "✗ connect.open conns>40"} {
		if !strings.Contains(table, want) {
			t.Errorf("verdicts lack %q:\n%s", want, table)
		}
	}
	page, err := os.ReadFile(cfg.HTMLPath)
	if err != nil || !strings.Contains(string(page), "<polyline") || !strings.Contains(string(page), "round trips/s") {
		t.Fatalf("HTML report missing or without charts (%v)", err)
	}
	if len(results) != len(knownScenarios) {
		t.Fatalf("%d results, want %d", len(results), len(knownScenarios))
	}
	for _, r := range results {
		if r.Latency == nil || r.Latency.Count() == 0 || len(r.Timeline) < 2 {
			t.Errorf("%s: no latency histogram or timeline in the JSON", r.Scenario)
		}
		for _, p := range []string{"p50", "p90", "p95", "p99", "max"} {
			metric(t, r, latencyPrefix[r.Scenario]+" "+p)
		}
		switch r.Scenario {
		case "reject":
			if n := metric(t, r, "answered 401"); n < 1 || metric(t, r, "failed") != 0 {
				t.Errorf("reject: %v answered 401, %v failed", n, metric(t, r, "failed"))
			}
		case "connect":
			if n := metric(t, r, "open conns"); n != 40 {
				t.Errorf("connect: %v open, want 40", n)
			}
			if metric(t, r, "server RSS") <= 0 {
				t.Error("connect: no server RSS")
			}
		case "fanout", "channels":
			if d := metric(t, r, "delivered"); d != 100 {
				t.Errorf("%s: delivered %v%%, want 100", r.Scenario, d)
			}
		case "churn", "echo":
			name := map[string]string{"churn": "cycles/s", "echo": "round trips/s"}[r.Scenario]
			if metric(t, r, name) <= 0 {
				t.Errorf("%s: no %s", r.Scenario, name)
			}
		}
	}
	if !strings.Contains(table, "handshakes/s") || !strings.Contains(progress, "== server: fanout") {
		t.Errorf("table or progress missing:\n%s\n%s", table, progress)
	}
}

func TestPrintTableRatios(t *testing.T) {
	results := []Result{
		{Server: "turnstile", Scenario: "connect", Metrics: []Metric{{Name: "handshakes/s", Unit: "1/s", Value: 20000}}},
		{Server: "gorilla", Scenario: "connect", Metrics: []Metric{{Name: "handshakes/s", Unit: "1/s", Value: 8000}}},
	}
	var b strings.Builder
	printTable(&b, results, []string{"turnstile", "gorilla"})
	for _, want := range []string{"turnstile/gorilla", "20000", "8000", "2.50×"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMedians(t *testing.T) {
	var rs []Result
	for i, v := range []float64{5, 1, 3, 100} {
		rs = append(rs, Result{Server: "a", Scenario: "connect", Round: i + 1,
			Metrics: []Metric{{Name: "handshakes/s", Value: v}, {Name: "p99", Value: float64(i)}}})
	}
	rs = append(rs, Result{Server: "b", Scenario: "connect", Metrics: []Metric{{Name: "handshakes/s", Value: 7}}})
	m := medians(rs)
	if len(m) != 2 || m[0].Server != "a" || m[1].Server != "b" {
		t.Fatalf("medians %+v", m)
	}
	if m[0].Metrics[0].Value != 4 || m[0].Metrics[1].Value != 1.5 || m[1].Metrics[0].Value != 7 {
		t.Fatalf("median values %+v / %+v", m[0].Metrics, m[1].Metrics)
	}
	if median([]float64{3, 1, 2}) != 2 || median(nil) != 0 {
		t.Fatal("median of odd count or empty")
	}
}

// runResults validates and runs cfg, its results written as JSON to a
// temporary file, fails the test unless Run's error is want (nil, or one
// errors.Is matches), and returns the results, the printed table and the
// progress lines.
func runResults(t *testing.T, cfg Config, want error) (results []Result, table, progress string) {
	t.Helper()
	cfg.JSONPath = t.TempDir() + "/out.json"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out, prog bytes.Buffer
	if err := Run(cfg, &out, &prog); (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("run: %v, want %v\n%s\nprogress:\n%s", err, want, out.String(), prog.String())
	}
	raw, err := os.ReadFile(cfg.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatal(err)
	}
	return results, out.String(), prog.String()
}

// buildServers builds turnstile from this module and the named peers from
// bench/peers (their own module) into a temporary folder, for -bin.
func buildServers(t *testing.T, peers ...string) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "turnstile"), "github.com/turnstile-push/turnstile/cmd/turnstile")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build turnstile: %v\n%s", err, out)
	}
	for _, p := range peers {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "peer-"+p), "./"+p)
		build.Dir = filepath.Join("..", "peers")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build peer-%s: %v\n%s", p, err, out)
		}
	}
	return bin
}

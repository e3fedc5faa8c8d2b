package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// TestMain lets the test binary serve as its own worker process, as the
// turnstile-load binary does.
func TestMain(m *testing.M) {
	if IsWorker() {
		os.Exit(RunWorker(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// fakeTurnstile is a minimal server with turnstile's contract: /auth,
// /ws_ticket, /publish and ticket admission on a separate WS listener.
type fakeTurnstile struct {
	httpAddr, wsAddr string
	mu               sync.Mutex
	conns            map[net.Conn]*sync.Mutex
	chans            map[net.Conn]string // the channel each connection subscribed to
	issued           sync.Map
	next             atomic.Int64
}

func newFakeTurnstile(t *testing.T) *fakeTurnstile {
	f := &fakeTurnstile{conns: map[net.Conn]*sync.Mutex{}, chans: map[net.Conn]string{}}
	wl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.wsAddr, f.httpAddr = wl.Addr().String(), hl.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"token":"tok","expires":1}`)
	})
	mux.HandleFunc("/ws_ticket", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, 401)
			return
		}
		tk := fmt.Sprintf("good%018d", f.next.Add(1))
		f.issued.Store(tk, true)
		fmt.Fprintf(w, `{"ticket":%q,"expires":1,"url":"x"}`, tk)
	})
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data     json.RawMessage
			Messages []struct {
				Channel string
				Data    json.RawMessage
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Messages != nil { // a batch of channel publishes
			f.mu.Lock()
			for _, m := range body.Messages {
				msg := append(append([]byte(`{"type":"message","channel":"`+m.Channel+`","offset":1,"data":`), m.Data...), '}')
				for c, wmu := range f.conns {
					if f.chans[c] == m.Channel {
						wmu.Lock()
						_ = wsutil.WriteServerText(c, msg)
						wmu.Unlock()
					}
				}
			}
			f.mu.Unlock()
			fmt.Fprintf(w, `{"results":[]}`)
			return
		}
		msg := append(append([]byte(`{"type":"message","data":`), body.Data...), '}')
		f.mu.Lock()
		n := len(f.conns)
		for c, wmu := range f.conns {
			wmu.Lock()
			_ = wsutil.WriteServerText(c, msg)
			wmu.Unlock()
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"recipients":%d}`, n)
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	go f.serveWS(wl)
	t.Cleanup(func() {
		hs.Close()
		wl.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeTurnstile) serveWS(l net.Listener) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer nc.Close()
			u := ws.Upgrader{OnRequest: func(uri []byte) error {
				i := bytes.Index(uri, []byte("ticket="))
				if i < 0 {
					return ws.RejectConnectionError(ws.RejectionStatus(401))
				}
				if _, ok := f.issued.LoadAndDelete(string(uri[i+7:])); !ok {
					return ws.RejectConnectionError(ws.RejectionStatus(401))
				}
				return nil
			}}
			if _, err := u.Upgrade(nc); err != nil {
				return
			}
			wmu := &sync.Mutex{}
			f.mu.Lock()
			f.conns[nc] = wmu
			_ = wsutil.WriteServerText(nc, []byte(`{"type":"welcome","user":"maggie","conn":"1"}`))
			f.mu.Unlock()
			defer func() {
				f.mu.Lock()
				delete(f.conns, nc)
				f.mu.Unlock()
			}()
			for {
				data, op, err := wsutil.ReadClientData(nc)
				if err != nil {
					return
				}
				var cmd struct{ Type, Channel string }
				if json.Unmarshal(data, &cmd) == nil && cmd.Type == "subscribe" {
					f.mu.Lock()
					f.chans[nc] = cmd.Channel
					f.mu.Unlock()
					data = []byte(`{"type":"subscribed","channel":"` + cmd.Channel + `","offset":0,"epoch":"e"}`)
				}
				wmu.Lock()
				err = wsutil.WriteServerMessage(nc, op, data)
				wmu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
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
	f := newFakeTurnstile(t)
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

package load

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func stormConfig(f *fakeServer) Config {
	cfg := DefaultConfig()
	cfg.HTTPAddr, cfg.WSAddr, cfg.PublishKey = f.httpAddr, f.wsAddr, "key"
	cfg.ServerPID = os.Getpid()
	cfg.Scenarios = []string{"storm"}
	cfg.Conns, cfg.InFlight, cfg.Sources, cfg.Channels = 60, 16, 4, 7
	cfg.Timeout = 30 * time.Second
	return cfg
}

func runStormOnce(t *testing.T, cfg Config) Result {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the epoll client needs Linux")
	}
	results, table, _ := runResults(t, cfg, nil)
	if len(results) != 1 {
		t.Fatalf("results %v, want one", results)
	}
	if !strings.Contains(table, "messages missed") {
		t.Errorf("table lacks the storm:\n%s", table)
	}
	return results[0]
}

// TestStormServerDrop: every client is dropped by POST /disconnect, comes
// back with a fresh ticket and recovers what was published meanwhile,
// nothing missed and nothing twice.
func TestStormServerDrop(t *testing.T) {
	f := newFakeServer(t)
	cfg := stormConfig(f)
	cfg.StormMissed = 3
	r := runStormOnce(t, cfg)
	if f.disconnects.Load() != 1 {
		t.Errorf("%d calls of /disconnect, want 1", f.disconnects.Load())
	}
	for name, want := range map[string]float64{"clients": 60, "back": 60, "failed": 0, "messages missed": 0, "duplicates": 0, "not recovered": 0} {
		if v := metric(t, r, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if metric(t, r, "all back") <= 0 || metric(t, r, "back p99") < metric(t, r, "back p50") {
		t.Errorf("times: all back %v, p50 %v, p99 %v", metric(t, r, "all back"), metric(t, r, "back p50"), metric(t, r, "back p99"))
	}
	// 60 initial tickets, 60 fresh ones at least: every client re-tickets.
	if n := f.next.Load(); n < 120 {
		t.Errorf("%d tickets issued, want at least 120", n)
	}
}

// TestStormCountsARedrop: clients closed again right after they were
// back (a close racing their return) count as back only once they are
// back again, so "back" is never more than the clients and the storm
// waits for them; "dropped again" says how often it happened.
func TestStormCountsARedrop(t *testing.T) {
	f := newFakeServer(t)
	f.dropAgain.Store(10)
	cfg := stormConfig(f)
	cfg.StormMissed = 2
	r := runStormOnce(t, cfg)
	for name, want := range map[string]float64{"clients": 60, "back": 60, "dropped again": 10, "failed": 0, "messages missed": 0, "duplicates": 0} {
		if v := metric(t, r, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// TestStormClientDropNoHistory: the clients close themselves (the peers'
// way) and the server has lost its history: each resubscribe is
// recovered:false, and the messages of the gap count as missed.
func TestStormClientDropNoHistory(t *testing.T) {
	f := newFakeServer(t)
	f.loseHistory = true
	cfg := stormConfig(f)
	cfg.StormDrop, cfg.StormMissed = dropClient, 2
	r := runStormOnce(t, cfg)
	if f.disconnects.Load() != 0 {
		t.Error("/disconnect called with -storm-drop client")
	}
	if v := metric(t, r, "back"); v != 60 {
		t.Errorf("back = %v, want 60", v)
	}
	if v := metric(t, r, "not recovered"); v != 60 {
		t.Errorf("not recovered = %v, want 60", v)
	}
	// The client-side close can race the rounds published right after the
	// drop: a client still reconnecting misses both, one already back (with
	// the top as its new start) misses only what came before it was back.
	if v := metric(t, r, "messages missed"); v < 1 || v > 120 {
		t.Errorf("messages missed = %v, want within 1..120", v)
	}
}

// TestStormBookkeeping checks offsets, gaps, duplicates and recovery on
// one client without a network.
func TestStormBookkeeping(t *testing.T) {
	w := &worker{job: job{Scenario: "storm", Channels: 3, Storm: stormJob{Recover: true}}, storm: newStormState(1)}
	c := &wsconn{id: 0, state: stClosed} // closed: sends are dropped
	eng := &engine{}
	w.eng = eng
	msg := func(off int) []byte {
		return fmt.Appendf(nil, `{"type":"message","channel":"load:0","offset":%d,"data":{"t":1}}`, off)
	}
	w.stormWelcome(c, 1)
	w.stormMessage(c, []byte(`{"type":"subscribed","id":1,"channel":"load:0","offset":4,"epoch":"e1"}`), 1)
	w.stormMessage(c, msg(5), 2)
	w.stormMessage(c, msg(5), 2) // a duplicate
	w.stormMessage(c, msg(7), 3) // 6 skipped
	if s := w.res.Storm; s.Dups != 1 || s.Gaps != 1 || w.res.Messages != 2 || w.res.Subscribed != 1 {
		t.Fatalf("after live messages: %+v, messages %d", s, w.res.Messages)
	}
	w.storm.live = true
	w.stormLost(&wsconn{id: 0, opened: true}, errServerClose, 10)
	if got := <-w.storm.need; got != 0 || w.res.Dropped != 1 {
		t.Fatalf("lost client: asked a ticket for %d, dropped %d", got, w.res.Dropped)
	}
	w.stormWelcome(c, 20)
	w.stormMessage(c, []byte(`{"type":"subscribed","id":1,"channel":"load:0","offset":9,"epoch":"e1","recovered":true,"missed":2}`), 21)
	if w.res.Storm.Back != 0 {
		t.Fatal("back before its missed messages arrived")
	}
	w.stormMessage(c, msg(8), 22)
	w.stormMessage(c, msg(9), 25)
	if s := w.res.Storm; s.Back != 1 || s.LastBack != 25 || s.Recovery.Quantile(0.5) < 14 || s.Recovery.Quantile(0.5) > 16 {
		t.Fatalf("after recovery: back %d at %d, recovery p50 %v", s.Back, s.LastBack, s.Recovery.Quantile(0.5))
	}
	// A client that keeps failing gives up after stormMaxTries.
	for range stormMaxTries + 1 {
		w.stormLost(&wsconn{id: 0}, errTimeout, 30)
		select {
		case <-w.storm.need:
		default:
		}
	}
	if w.res.Storm.Lost != 1 {
		t.Fatalf("lost %d, want 1 after %d failures", w.res.Storm.Lost, stormMaxTries+1)
	}
}

func TestStormConfig(t *testing.T) {
	var errs bytes.Buffer
	c, err := ParseFlags([]string{"-servers", "turnstile,gorilla", "-scenario", "storm", "-storm-drop", "client", "-storm-missed", "4"}, &errs)
	if err != nil || c.StormDrop != dropClient || c.StormMissed != 4 || c.Scenarios[0] != "storm" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	d := DefaultConfig()
	if d.stormDrop("turnstile") != dropServer || d.stormDrop("gorilla") != dropClient || d.stormDrop("server") != dropServer {
		t.Error("auto drop: server for turnstile and a running server, client for the peers")
	}
	for _, bad := range [][]string{
		{"-servers", "turnstile", "-scenario", "storm", "-storm-drop", "restart"},
		{"-servers", "turnstile", "-scenario", "storm", "-storm-missed", "-1"},
		{"-servers", "turnstile", "-scenario", "storm", "-channels", "0"},
		{"-servers", "turnstile", "-curve", "1000,x"},
		{"-servers", "turnstile", "-curve", "0"},
		{"-servers", "turnstile", "-curve", "1000", "-threshold", "connect.p99<1s"},
		{"-servers", "turnstile", "-curve", "1000", "-nodes", "1,3"},
		{"-servers", "turnstile", "-nodes", "3", "-server-cpuprofile", "/tmp/p"},
	} {
		if _, err := ParseFlags(bad, &errs); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if c, err := ParseFlags([]string{"-servers", "turnstile", "-scenario", "storm", "-threshold", "storm.p99<3s", "-threshold", "storm.messages missed<=0"}, &errs); err != nil || len(c.Thresholds) != 2 {
		t.Errorf("storm thresholds: %v", err)
	}
	c, err = ParseFlags([]string{"-servers", "turnstile", "-curve", "1000, 5000,19000", "-scenario", "connect,fanout", "-html", "curve.html"}, &errs)
	if err != nil || len(c.Curve) != 3 || c.Curve[2] != 19000 || c.HTMLPath != "curve.html" {
		t.Fatalf("curve %v, html %q, %v", c.Curve, c.HTMLPath, err)
	}
}

func TestPrintCurve(t *testing.T) {
	pt := func(n int, cpu, mem float64) CurvePoint {
		return CurvePoint{Conns: n, Result: Result{Server: "turnstile", Scenario: "connect",
			Metrics: []Metric{{Name: "server CPU/op", Value: cpu}, {Name: "server mem/conn", Value: mem}}}}
	}
	var b strings.Builder
	printCurve(&b, []CurvePoint{pt(1000, 10, 4), pt(5000, 11, 4), pt(19000, 15, 2)}, []string{"turnstile"}, []string{"connect"})
	for _, want := range []string{"19000÷1000", "1.50×", "0.50×", "server mem/conn"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("curve table lacks %q:\n%s", want, b.String())
		}
	}
}

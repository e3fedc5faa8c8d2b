package load

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// centrifugeConfig runs the real turnstile and the centrifuge peer, built
// for the test, with a minute to finish.
func centrifugeConfig(t *testing.T) Config {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the epoll client needs Linux")
	}
	cfg := DefaultConfig()
	cfg.Servers, cfg.BinDir = []string{"turnstile", "centrifuge"}, buildServers(t, "centrifuge")
	cfg.Timeout, cfg.LogDir = 60*time.Second, t.TempDir()
	return cfg
}

// TestCentrifugeRun runs the real turnstile and the centrifuge peer (the
// library inside Centrifugo, its own protocol) side by side: connect,
// fanout broadcast and to the user, echo and churn, 200 connections; all
// of it delivered, and the table has the turnstile/centrifuge ratio.
func TestCentrifugeRun(t *testing.T) {
	cfg := centrifugeConfig(t)
	cfg.Conns, cfg.InFlight, cfg.Sources = 200, 64, 4
	cfg.Messages, cfg.Interval = 5, 30*time.Millisecond
	cfg.Hold, cfg.Duration = 200*time.Millisecond, time.Second
	for _, toUser := range []bool{false, true} {
		cfg.ToUser = toUser
		cfg.Scenarios = []string{"fanout"}
		if !toUser {
			cfg.Scenarios = []string{"connect", "fanout", "echo", "churn"}
		}
		results, table, _ := runResults(t, cfg, nil)
		if len(results) != 2*len(cfg.Scenarios) {
			t.Fatalf("to-user %v: %d results, want %d:\n%s", toUser, len(results), 2*len(cfg.Scenarios), table)
		}
		for _, r := range results {
			if len(r.Errors) > 0 {
				t.Errorf("%s %s (to-user %v): errors %v", r.Server, r.Scenario, toUser, r.Errors)
			}
			switch r.Scenario {
			case "connect", "fanout":
				if n := metric(t, r, "open conns"); n != float64(cfg.Conns) {
					t.Errorf("%s %s: %v open conns, want %d", r.Server, r.Scenario, n, cfg.Conns)
				}
			}
			switch r.Scenario {
			case "fanout":
				if d := metric(t, r, "delivered"); d != 100 {
					t.Errorf("%s fanout (to-user %v): delivered %v%%", r.Server, toUser, d)
				}
			case "echo":
				if n := metric(t, r, "round trips/s"); n <= 0 {
					t.Errorf("%s echo: %v round trips/s", r.Server, n)
				}
			case "churn":
				if n := metric(t, r, "cycles/s"); n <= 0 {
					t.Errorf("%s churn: %v cycles/s", r.Server, n)
				}
			}
		}
		if !strings.Contains(table, "turnstile/centrifuge") {
			t.Errorf("table lacks the turnstile/centrifuge ratio:\n%s", table)
		}
		t.Logf("to-user %v:\n%s", toUser, table)
	}
}

// TestCentrifugeChannelsAndStorm: the same two servers in the scenarios
// that need a client's own subscribes and recovery: channels (each
// connection subscribes to one of 7, every message delivered) and storm
// (every client dropped, back with a fresh ticket, resubscribed from its
// last position, what was published meanwhile recovered exactly once).
// Centrifuge recovers through its own subscribe reply, which carries the
// missed publications; turnstile replays them after its subscribed reply.
func TestCentrifugeChannelsAndStorm(t *testing.T) {
	cfg := centrifugeConfig(t)
	cfg.Scenarios = []string{"channels", "storm"}
	cfg.Conns, cfg.InFlight, cfg.Sources, cfg.Channels = 120, 32, 4, 7
	cfg.Messages, cfg.Interval, cfg.StormMissed = 5, 30*time.Millisecond, 3
	results, table, _ := runResults(t, cfg, nil)
	if len(results) != 4 {
		t.Fatalf("%d results, want 4:\n%s", len(results), table)
	}
	for _, r := range results {
		if len(r.Errors) > 0 {
			t.Errorf("%s %s: errors %v", r.Server, r.Scenario, r.Errors)
		}
		want := map[string]float64{"delivered": 100}
		if r.Scenario == "storm" {
			want = map[string]float64{"clients": 120, "back": 120, "failed": 0, "messages missed": 0, "duplicates": 0, "not recovered": 0}
		}
		for name, v := range want {
			if got := metric(t, r, name); got != v {
				t.Errorf("%s %s: %s = %v, want %v", r.Server, r.Scenario, name, got, v)
			}
		}
	}
	if !strings.Contains(table, "turnstile/centrifuge") {
		t.Errorf("table lacks the turnstile/centrifuge ratio:\n%s", table)
	}
	t.Logf("\n%s", table)
}

func TestCentrifugeUnsupported(t *testing.T) {
	for _, sc := range []string{"connect", "reject", "fanout", "echo", "churn", "channels", "storm"} {
		if why := unsupported("centrifuge", sc); why != "" {
			t.Errorf("centrifuge %s: %s", sc, why)
		}
	}
	if unsupported("centrifuge", "nonesuch") == "" {
		t.Error("an unknown scenario is not refused for centrifuge")
	}
}

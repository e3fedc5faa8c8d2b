package load

import (
	"errors"
	"strings"
	"testing"
)

func TestParseThreshold(t *testing.T) {
	for in, want := range map[string]Threshold{
		"connect.p99<200ms":         {Scenario: "connect", Metric: "handshake p99", Op: "<", Value: 200, Duration: true},
		"fanout.max <= 1.5s":        {Scenario: "fanout", Metric: "delivery max", Op: "<=", Value: 1500, Duration: true},
		"reject.rate>20000":         {Scenario: "reject", Metric: "rejections/s", Op: ">", Value: 20000},
		"gorilla:echo.p90<500us":    {Server: "gorilla", Scenario: "echo", Metric: "rtt p90", Op: "<", Value: 0.5, Duration: true},
		"connect.server mem/conn<8": {Scenario: "connect", Metric: "server mem/conn", Op: "<", Value: 8},
		"fanout.delivered>=100":     {Scenario: "fanout", Metric: "delivered", Op: ">=", Value: 100},
		"churn.p95<20µs":            {Scenario: "churn", Metric: "cycle p95", Op: "<", Value: 0.02, Duration: true},
		"server:connect.p50<1ms":    {Server: "server", Scenario: "connect", Metric: "handshake p50", Op: "<", Value: 1, Duration: true},
	} {
		got, err := ParseThreshold(in)
		want.Raw = in
		if err != nil || got != want {
			t.Errorf("ParseThreshold(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "connect.p99", "p99<200ms", "connect.<1", "connect.p99<", "connect.p99<fast",
		"upload.p99<1ms", "apache:connect.p99<1ms"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q) accepted", bad)
		}
	}
}

func TestThresholdsNeedTheirScenario(t *testing.T) {
	th, _ := ParseThreshold("fanout.p99<200ms")
	cfg := DefaultConfig()
	cfg.HTTPAddr, cfg.WSAddr = "127.0.0.1:1", "127.0.0.1:2"
	cfg.Thresholds = []Threshold{th}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not in -scenario") {
		t.Fatalf("a threshold on a scenario that does not run: %v", err)
	}
	if _, err := ParseFlags([]string{"-http", "127.0.0.1:1", "-ws", "127.0.0.1:2", "-scenario", "connect",
		"-threshold", "connect.p99<200ms", "-threshold", "connect.rate>100"}, &strings.Builder{}); err != nil {
		t.Fatalf("two -threshold flags: %v", err)
	}
}

func TestEvaluateThresholds(t *testing.T) {
	results := []Result{
		{Server: "turnstile", Scenario: "connect", Metrics: []Metric{{Name: "handshake p99", Unit: "ms", Value: 62}, {Name: "handshakes/s", Unit: "1/s", Value: 28000}}},
		{Server: "gorilla", Scenario: "connect", Metrics: []Metric{{Name: "handshake p99", Unit: "ms", Value: 120}, {Name: "handshakes/s", Unit: "1/s", Value: 15000}}},
	}
	servers := []string{"gorilla", "turnstile"}
	var ths []Threshold
	for _, s := range []string{"connect.p99<100ms", "gorilla:connect.p99<100ms", "connect.rate>=28000", "connect.rate>28000", "connect.open conns>1", "connect.handshakes/s<1s"} {
		th, err := ParseThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		ths = append(ths, th)
	}
	vs := evaluate(ths, results, servers)
	want := []bool{true, false, true, false, false, false}
	for i, v := range vs {
		if v.Pass != want[i] {
			t.Errorf("%s on %s (%v %s): pass %v, want %v", v.Threshold.Raw, v.Server, v.Value, v.Unit, v.Pass, want[i])
		}
	}
	if vs[0].Server != "turnstile" || vs[1].Server != "gorilla" {
		t.Errorf("servers judged: %s, %s", vs[0].Server, vs[1].Server)
	}
	var out strings.Builder
	if printVerdicts(&out, vs) {
		t.Fatal("printVerdicts says all passed")
	}
	for _, line := range []string{"✓ connect.p99<100ms", "turnstile: 62 ms", "✗ gorilla:connect.p99<100ms", "gorilla: 120 ms",
		"✗ connect.open conns>1", "not measured", "handshakes/s is in 1/s, not a duration"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("verdicts lack %q:\n%s", line, out.String())
		}
	}
	if !errors.Is(ErrThresholds, ErrThresholds) || !printVerdicts(&out, vs[:1]) || !printVerdicts(&out, nil) {
		t.Fatal("a passing set must report true")
	}
}

package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/turnstile-push/turnstile/internal/redistest"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	// selector is a metric name with an optional {matchers} in PromQL.
	selector = regexp.MustCompile(`\b((?:turnstile|process|go)_[a-zA-Z0-9_:]*)(?:\{([^}]*)\})?`)
	byClause = regexp.MustCompile(`\bby \(([^)]*)\)\s*\((?:rate|increase)?\(?\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

func parseSamples(text string) []sample {
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// dashboardExprs is every PromQL expression of the dashboard's panels and
// variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var dash struct {
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(deployFile(t, "grafana-dashboard.json")), &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	return exprs
}

// TestDashboardQueriesExistingMetrics: every metric the Grafana dashboard
// queries is exported by the running binary, with every label it selects
// or groups by, and the dashboard covers the operator's questions. The
// Redis row's metrics exist only with -redis: TestDashboardRedisPanels.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	var exprs []string
	for _, e := range dashboardExprs(t) {
		if !strings.Contains(e, "turnstile_redis_") {
			exprs = append(exprs, e)
		}
	}
	s := startBinary(t)
	queried := checkDashboardExprs(t, exprs, s.metrics(t))
	for _, want := range []string{"turnstile_open_connections", "turnstile_handshakes_total",
		"turnstile_handshake_rejections_total", "turnstile_messages_total", "turnstile_slow_consumer_closes_total",
		"turnstile_tickets_total", "turnstile_tickets_live", "turnstile_logins_total", "turnstile_build_info",
		"turnstile_closes_total", "turnstile_subscriptions", "turnstile_recoveries_total"} {
		if !queried[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// TestDashboardRedisPanels: the Redis row queries what a -redis node
// exports, and shows its health, broker, tickets and pub/sub.
func TestDashboardRedisPanels(t *testing.T) {
	var exprs []string
	for _, e := range dashboardExprs(t) {
		if strings.Contains(e, "turnstile_redis_") {
			exprs = append(exprs, e)
		}
	}
	node := startNodes(t, redistest.Start(t), 1)[0]
	queried := checkDashboardExprs(t, exprs, node.metrics(t))
	for _, want := range []string{"turnstile_redis_up", "turnstile_redis_broker_commands_total", "turnstile_redis_broker_errors_total",
		"turnstile_redis_tickets_total", "turnstile_redis_canary_lag_seconds", "turnstile_redis_pubsub_gap_publications_total"} {
		if !queried[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// checkDashboardExprs fails the test for every metric, label or grouping
// the expressions use that the /metrics text does not export, and returns
// the metric names they query.
func checkDashboardExprs(t *testing.T, exprs []string, metrics string) map[string]bool {
	t.Helper()
	byName := map[string][]sample{}
	for _, smp := range parseSamples(metrics) {
		byName[smp.name] = append(byName[smp.name], smp)
	}
	queried := map[string]bool{}
	for _, e := range exprs {
		for _, m := range selector.FindAllStringSubmatch(e, -1) {
			name := m[1]
			queried[name] = true
			have := byName[name]
			if len(have) == 0 {
				t.Errorf("%q queries %s, which /metrics does not export", e, name)
				continue
			}
			for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
				label, value := p[1], p[2]
				if label == "instance" || label == "job" { // added by Prometheus at scrape time
					continue
				}
				if !hasLabel(have, label, value) {
					t.Errorf("%q selects %s{%s=%q}, which /metrics never exports", e, name, label, value)
				}
			}
		}
		for _, m := range byClause.FindAllStringSubmatch(e, -1) {
			for _, label := range strings.Split(m[1], ",") {
				label = strings.TrimSpace(label)
				if label != "instance" && label != "job" && !hasLabel(byName[m[2]], label, "") {
					t.Errorf("%q groups %s by %s, a label it does not have", e, m[2], label)
				}
			}
		}
	}
	return queried
}

// hasLabel reports whether a sample has label (= value, unless value is "").
func hasLabel(samples []sample, label, value string) bool {
	for _, s := range samples {
		if v, ok := s.labels[label]; ok && (value == "" || v == value) {
			return true
		}
	}
	return false
}

func TestSelectorParsing(t *testing.T) {
	e := `sum by (reason) (rate(turnstile_handshake_rejections_total{instance=~"$i",direction="out"}[5m])) + go_goroutines`
	m := selector.FindAllStringSubmatch(e, -1)
	if len(m) != 2 || m[0][1] != "turnstile_handshake_rejections_total" || m[1][1] != "go_goroutines" {
		t.Fatalf("selectors %q", m)
	}
	if p := labelPair.FindAllStringSubmatch(m[0][2], -1); len(p) != 1 || p[0][1] != "direction" || p[0][2] != "out" {
		t.Fatalf("equality matchers %q (the =~ one must not count)", p)
	}
	if b := byClause.FindStringSubmatch(e); b == nil || b[1] != "reason" || b[2] != "turnstile_handshake_rejections_total" {
		t.Fatalf("by clause %q", b)
	}
}

package load

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrThresholds is returned by Run when a -threshold is missed, after the
// table and every report are written; turnstile-load then exits 99, as k6
// does.
var ErrThresholds = errors.New("load: thresholds missed")

var errBadThreshold = errors.New("want [SERVER:]SCENARIO.METRIC<VALUE (or <=, >, >=), e.g. connect.p99<200ms, reject.rate>20000, gorilla:fanout.delivered>=100")

// Threshold is one pass/fail criterion on a measured metric, like k6's.
type Threshold struct {
	Raw      string  // as given
	Server   string  // "" : turnstile, or the only server
	Scenario string  // connect, reject, fanout, churn, echo
	Metric   string  // a metric name of the table, or an alias (p50…p99, max, rate)
	Op       string  // <, <=, >, >=
	Value    float64 // in the metric's unit (ms for durations)
	Duration bool    // Value was given as a duration: the metric must be in ms
}

// ParseThreshold reads "[SERVER:]SCENARIO.METRIC OP VALUE". METRIC is a
// metric name as the table prints it ("server mem/conn") or an alias: p50,
// p90, p95, p99, max (the scenario's latency) and rate (its throughput).
// VALUE is a number in the metric's unit or, for a latency, a duration
// (200ms, 1.5s).
func ParseThreshold(s string) (Threshold, error) {
	th := Threshold{Raw: s}
	i := strings.IndexAny(s, "<>")
	if i < 0 {
		return th, fmt.Errorf("-threshold %q: %w", s, errBadThreshold)
	}
	left, right := strings.TrimSpace(s[:i]), s[i:]
	th.Op = right[:1]
	right = right[1:]
	if strings.HasPrefix(right, "=") {
		th.Op += "="
		right = right[1:]
	}
	right = strings.TrimSpace(right)
	if server, rest, ok := strings.Cut(left, ":"); ok {
		th.Server, left = server, rest
	}
	sc, metric, ok := strings.Cut(left, ".")
	if !ok || metric == "" || right == "" {
		return th, fmt.Errorf("-threshold %q: %w", s, errBadThreshold)
	}
	if !slices.Contains(knownScenarios, sc) && !slices.Contains(moreScenarios, sc) {
		return th, fmt.Errorf("-threshold %q: %w: %q", s, errUnknownScenario, sc)
	}
	if th.Server != "" {
		base, _ := splitDeflate(th.Server)
		if _, known := knownServers[base]; !known && base != "server" && !isClusterName(th.Server) {
			return th, fmt.Errorf("-threshold %q: %w: %q", s, errUnknownServer, th.Server)
		}
	}
	th.Scenario, th.Metric = sc, resolveMetric(sc, metric)
	if v, err := strconv.ParseFloat(right, 64); err == nil {
		th.Value = v
		return th, nil
	}
	d, err := time.ParseDuration(strings.ReplaceAll(right, "µs", "us"))
	if err != nil {
		return th, fmt.Errorf("-threshold %q: value %q is neither a number nor a duration (200ms)", s, right)
	}
	th.Value, th.Duration = ms(d), true
	return th, nil
}

// resolveMetric maps the aliases to the scenario's metric names.
func resolveMetric(sc, m string) string {
	m = strings.TrimSpace(m)
	switch m {
	case "p50", "p90", "p95", "p99", "max":
		return latencyPrefix[sc] + " " + m
	case "rate":
		return rateMetric[sc]
	}
	return m
}

// Verdict is a threshold's outcome.
type Verdict struct {
	Threshold Threshold
	Server    string
	Value     float64
	Unit      string
	Found     bool
	Pass      bool
}

// thresholdServer is the server a threshold without SERVER: judges:
// turnstile when it ran, else the first (or only) server.
func thresholdServer(th Threshold, servers []string) string {
	if th.Server != "" {
		return th.Server
	}
	if slices.Contains(servers, "turnstile") {
		return "turnstile"
	}
	return servers[0]
}

// evaluate judges every threshold on results (medians over rounds).
func evaluate(ths []Threshold, results []Result, servers []string) []Verdict {
	var out []Verdict
	for _, th := range ths {
		v := Verdict{Threshold: th, Server: thresholdServer(th, servers)}
		for _, r := range results {
			if r.Server != v.Server || r.Scenario != th.Scenario {
				continue
			}
			for _, m := range r.Metrics {
				if m.Name == th.Metric {
					v.Found, v.Value, v.Unit = true, m.Value, m.Unit
				}
			}
		}
		v.Pass = v.Found && (!th.Duration || v.Unit == "ms") && compare(v.Value, th.Op, th.Value)
		out = append(out, v)
	}
	return out
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return false
}

// printVerdicts writes one line per threshold, k6 style, and reports
// whether all passed.
func printVerdicts(w io.Writer, vs []Verdict) bool {
	if len(vs) == 0 {
		return true
	}
	fmt.Fprintln(w, "thresholds:")
	all := true
	for _, v := range vs {
		mark := "✓"
		if !v.Pass {
			mark, all = "✗", false
		}
		got := "not measured"
		switch {
		case v.Found && v.Threshold.Duration && v.Unit != "ms":
			got = fmt.Sprintf("%s is in %s, not a duration", v.Threshold.Metric, v.Unit)
		case v.Found:
			got = strings.TrimSpace(formatValue(v.Value) + " " + v.Unit)
		}
		fmt.Fprintf(w, "  %s %-32s %s: %s\n", mark, v.Threshold.Raw, v.Server, got)
	}
	return all
}

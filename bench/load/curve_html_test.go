package load

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// The curve page draws, per scenario, one CPU line (and a faded user line)
// and one memory line per server through every connection count, and like
// the report it fetches nothing.
func TestCurveHTML(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenarios, cfg.Curve, cfg.Repeat = []string{"connect", "fanout"}, []int{1000, 5000, 10000}, 3
	var points []CurvePoint
	for _, n := range cfg.Curve {
		for _, srv := range []string{"turnstile", "gorilla"} {
			for _, sc := range cfg.Scenarios {
				r := Result{Server: srv, Scenario: sc}
				r.add("server CPU/op", "µs", 30+float64(n)/1000, true)
				r.add("server user/op", "µs", 10, true)
				if sc == "connect" {
					r.add("server mem/conn", "KiB", 1+1000/float64(n), true)
				}
				points = append(points, CurvePoint{Conns: n, Result: r})
			}
		}
	}
	page := renderCurveHTML(&cfg, points, []string{"turnstile", "gorilla"}, time.Unix(0, 0))
	polylines := regexp.MustCompile(`<polyline[^>]*points="([^"]*)"><title>([^<]*)</title>`).FindAllStringSubmatch(page, -1)
	lines := map[string]int{}
	for _, m := range polylines {
		lines[m[2]]++
		if n := len(strings.Fields(m[1])); n != len(cfg.Curve) {
			t.Errorf("line %q has %d points, want one per count (%d)", m[2], n, len(cfg.Curve))
		}
	}
	// CPU and user for each server in both scenarios; memory only where
	// the scenario measures it (connect).
	for _, want := range []string{"turnstile server CPU/op", "turnstile server user/op", "gorilla server CPU/op",
		"gorilla server user/op", "turnstile server mem/conn", "gorilla server mem/conn"} {
		if lines[want] == 0 {
			t.Errorf("no line %q (lines: %v)", want, lines)
		}
	}
	if lines["turnstile server CPU/op"] != 2 || lines["turnstile server mem/conn"] != 1 {
		t.Errorf("lines %v: want CPU in both scenarios, memory in connect only", lines)
	}
	// As the report: only the SVG namespace may name a URL, and no script.
	fetches := regexp.MustCompile(`(?i)<script|\bsrc=|\bhref=|@import|url\(|https?://`)
	for _, m := range fetches.FindAllStringIndex(page, -1) {
		if s := page[m[0]:min(len(page), m[0]+40)]; !strings.HasPrefix(s, "http://www.w3.org/2000/svg") {
			t.Errorf("the curve page refers to something outside itself: %q", s)
		}
	}
	if !strings.Contains(page, "1000, 5000, 10000 connections") {
		t.Error("the page does not say which counts it ran")
	}
}

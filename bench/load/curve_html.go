package load

import (
	"fmt"
	"html"
	"math"
	"os"
	"runtime"
	"strings"
	"time"
)

// The scaling curve's chart (-curve with -html): per scenario, the server's
// CPU per operation and its memory per connection against the connection
// count, one line per server. A flat line is the goal; a rising one is a
// defect, and the chart shows where it starts.

// writeCurveHTML renders points into path.
func writeCurveHTML(path string, cfg *Config, points []CurvePoint, servers []string) error {
	return os.WriteFile(path, []byte(renderCurveHTML(cfg, points, servers, time.Now())), 0o644)
}

func renderCurveHTML(cfg *Config, points []CurvePoint, servers []string, now time.Time) string {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(pageHead("turnstile-load scaling curve"))
	counts := make([]string, len(cfg.Curve))
	for i, n := range cfg.Curve {
		counts[i] = fmt.Sprint(n)
	}
	fmt.Fprintf(&b, "<h1>turnstile-load scaling curve</h1>\n<p class=\"meta\">%s · servers %s · scenarios %s · %s connections · %d round(s) each (medians) · %d CPUs, %s</p>\n",
		esc(now.UTC().Format("2006-01-02 15:04 UTC")), esc(strings.Join(servers, ", ")), esc(strings.Join(cfg.Scenarios, ", ")),
		esc(strings.Join(counts, ", ")), max(1, cfg.Repeat), runtime.NumCPU(), esc(runtime.Version()))
	b.WriteString(`<p class="legend">`)
	for _, s := range servers {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, colorOf(s), esc(s))
	}
	b.WriteString("</p>\n<p class=\"note\">Solid: all of the server's CPU per operation; faded: its user part (the server's own code). Flat is the goal.</p>\n")
	for _, sc := range cfg.Scenarios {
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p class=\"note\">%s</p>\n<div class=\"charts\">\n", esc(sc), esc(scenarioText[sc]))
		b.WriteString(curveChart(points, servers, sc, "server CPU per operation", "µs", "server CPU/op", "server user/op"))
		b.WriteString(curveChart(points, servers, sc, "server memory per connection", "KiB", "server mem/conn", ""))
		b.WriteString("</div>\n")
	}
	b.WriteString("<p class=\"note\">Written by turnstile-load -curve. CPU comes from /proc in 10 ms ticks, so small counts are coarse; memory per connection counts from the server's start, so its fixed growth weighs on small counts.</p>\n</body></html>\n")
	return b.String()
}

// curveChart draws metric (and, faded, second if not empty) of scenario sc
// against the connection count, one line per server; "" when no point has
// the metric.
func curveChart(points []CurvePoint, servers []string, sc, title, unit, metric, second string) string {
	var ss []series
	x0, x1, y1 := math.Inf(1), math.Inf(-1), 0.0
	add := func(srv, name string, opacity float64) {
		s := series{name: srv + " " + name, color: colorOf(srv), opacity: opacity}
		for _, p := range points {
			if p.Result.Scenario != sc || p.Result.Server != srv {
				continue
			}
			if v, ok := metricValue(p.Result, name); ok {
				x := float64(p.Conns)
				s.pts = append(s.pts, [2]float64{x, v})
				x0, x1, y1 = math.Min(x0, x), math.Max(x1, x), math.Max(y1, v)
			}
		}
		if len(s.pts) > 0 {
			ss = append(ss, s)
		}
	}
	for _, srv := range servers {
		add(srv, metric, 1)
		if second != "" {
			add(srv, second, 0.4)
		}
	}
	if len(ss) == 0 {
		return "" // the scenario does not measure it (memory in fanout)
	}
	if x1 <= x0 {
		x1 = x0 + 1
	}
	yt := niceTicks(0, y1, 5)
	return lineChart(title, "connections", unit, ss, niceTicks(x0, x1, 5), yt, x0, x1, 0, yt[len(yt)-1].v)
}

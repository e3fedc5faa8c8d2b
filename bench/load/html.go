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

// The HTML report (-html) is one file with inline CSS and SVG: no script,
// font or image is fetched when it is viewed, and its Content-Security-Policy
// forbids the browser to try.

var serverColors = map[string]string{
	"turnstile": "#2563eb", "server": "#2563eb", "gorilla": "#d97706", "gobwas": "#059669", "nbio": "#7c3aed", "centrifuge": "#db2777",
}

var scenarioText = map[string]string{
	"connect":  "authenticated connections opened as fast as the in-flight cap allows, then held; latency is dial → 101",
	"reject":   "a storm of upgrades with unknown tickets; latency is dial → 401",
	"fanout":   "broadcasts to every open connection; latency is publish → receive",
	"churn":    "full cycles of fresh ticket, connect, welcome, close",
	"echo":     "every connection keeps one message in flight; latency is the round trip",
	"channels": "connections spread over channels, one message to every channel each round; latency is publish → receive",
}

func colorOf(server string) string {
	if c, ok := serverColors[strings.TrimSuffix(server, deflateSuffix)]; ok {
		return c
	}
	if n, ok := clusterSize(server); ok {
		return clusterColors[(n-1)%len(clusterColors)]
	}
	return "#6b7280"
}

// writeHTML renders results (every round) into path.
func writeHTML(path string, cfg *Config, results []Result, servers []string, verdicts []Verdict) error {
	return os.WriteFile(path, []byte(renderHTML(cfg, results, servers, verdicts, time.Now())), 0o644)
}

func renderHTML(cfg *Config, results []Result, servers []string, verdicts []Verdict, now time.Time) string {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(pageHead("turnstile-load report"))
	rounds := max(1, cfg.Repeat)
	fmt.Fprintf(&b, "<h1>turnstile-load report</h1>\n<p class=\"meta\">%s · servers %s · scenarios %s · %d connections, %d in flight · %d round(s)%s · %d CPUs, %s</p>\n",
		esc(now.UTC().Format("2006-01-02 15:04 UTC")), esc(strings.Join(servers, ", ")), esc(strings.Join(cfg.Scenarios, ", ")),
		cfg.Conns, cfg.InFlight, rounds, map[bool]string{true: " (tables: medians)", false: ""}[rounds > 1], runtime.NumCPU(), esc(runtime.Version()))
	b.WriteString(`<p class="legend">`)
	for _, s := range servers {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, colorOf(s), esc(s))
	}
	b.WriteString("</p>\n")

	if len(verdicts) > 0 {
		b.WriteString("<h2>Thresholds</h2>\n<table><tr><th>threshold</th><th>server</th><th>measured</th><th></th></tr>\n")
		for _, v := range verdicts {
			got := "not measured"
			if v.Found {
				got = strings.TrimSpace(formatValue(v.Value) + " " + v.Unit)
			}
			cls, mark := "pass", "✓ pass"
			if !v.Pass {
				cls, mark = "fail", "✗ missed"
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"%s\">%s</td></tr>\n", esc(v.Threshold.Raw), esc(v.Server), esc(got), cls, mark)
		}
		b.WriteString("</table>\n")
	}

	summary := medians(results)
	peers := peerRatios(servers)
	if len(peers) > 0 {
		b.WriteString("<h2>turnstile ÷ peer</h2>\n<p class=\"note\">Each bar is how many times better turnstile is (right, green) or worse (left, red) than the peer on one metric: rates divided, times, memory and CPU inverted. Log scale. A compressing peer is set against compressing turnstile, and turnstile+deflate against turnstile (compression's cost and saving).</p>\n<div class=\"charts\">\n")
		for _, rc := range peers {
			b.WriteString(ratioChart(summary, rc))
		}
		b.WriteString("</div>\n")
	}

	for _, sc := range cfg.Scenarios {
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p class=\"note\">%s</p>\n<div class=\"charts\">\n", esc(sc), esc(scenarioText[sc]))
		b.WriteString(latencyChart(results, servers, sc))
		b.WriteString(throughputChart(results, servers, sc))
		b.WriteString("</div>\n")
		b.WriteString(metricTable(summary, servers, peers, sc))
	}
	b.WriteString("<p class=\"note\">Written by turnstile-load. Percentiles are nearest-rank over log-linear histograms (1.6 % precision) merged across workers and rounds. Throughput over time comes from the workers' progress reports (about every ½ s), so bursts shorter than that show averaged.</p>\n</body></html>\n")
	return b.String()
}

// pageHead is the start of a report page, up to and including <body>:
// inline styles only (see the Content-Security-Policy).
func pageHead(title string) string {
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + html.EscapeString(title) + `</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 4px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.meta,.note{color:#4b5563}.charts{display:flex;flex-wrap:wrap;gap:16px}.charts svg{flex:1 1 540px;max-width:100%;background:#fafafa;border:1px solid #e5e7eb;border-radius:6px}
table{border-collapse:collapse;margin:12px 0;font-variant-numeric:tabular-nums}th,td{padding:3px 10px;border-bottom:1px solid #f0f0f0;text-align:right}th:first-child,td:first-child{text-align:left}
.pass{color:#047857}.fail{color:#b91c1c;font-weight:600}.better{color:#047857}.worse{color:#b91c1c}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
</style></head><body>
`
}

// series is one line of a chart.
type series struct {
	name, color string
	opacity     float64
	pts         [][2]float64
}

type tick struct {
	v     float64
	label string
}

// niceTicks returns about n round values spanning [lo, hi].
func niceTicks(lo, hi float64, n int) []tick {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	// The last tick is the first at or past hi, so that it can be the
	// axis' end without clipping the data.
	var out []tick
	for v := math.Ceil(lo/step) * step; ; v += step {
		out = append(out, tick{v, formatValue(v)})
		if v >= hi-step/1e6 {
			return out
		}
	}
}

// logTicks returns the powers of ten from below lo to past hi (lo > 0).
func logTicks(lo, hi float64) []tick {
	var out []tick
	for e := math.Floor(math.Log10(lo)); ; e++ {
		v := math.Pow(10, e)
		out = append(out, tick{e, formatValue(v)})
		if v >= hi {
			return out
		}
	}
}

// lineChart draws series in an SVG of its own, axes from the ticks.
func lineChart(title, xLabel, yLabel string, ss []series, xt, yt []tick, x0, x1, y0, y1 float64) string {
	const w, h, ml, mr, mt, mb = 560.0, 320.0, 64.0, 30.0, 34.0, 44.0
	px := func(x float64) float64 { return ml + (x-x0)/(x1-x0)*(w-ml-mr) }
	py := func(y float64) float64 { return h - mb - (y-y0)/(y1-y0)*(h-mt-mb) }
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h, esc(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="600" fill="#111827">%s</text>`, ml, esc(title))
	for _, t := range yt {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#4b5563">%s</text>`,
			ml, w-mr, py(t.v), py(t.v), ml-6, py(t.v)+4, esc(t.label))
	}
	for _, t := range xt {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#4b5563">%s</text>`,
			px(t.v), px(t.v), mt, h-mb, px(t.v), h-mb+16, esc(t.label))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#6b7280"/>`, ml, w-mr, h-mb, h-mb)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle" fill="#374151">%s</text>`, (ml+w-mr)/2, h-8, esc(xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.0f) rotate(-90)" font-size="12" text-anchor="middle" fill="#374151">%s</text>`, (mt+h-mb)/2, esc(yLabel))
	for _, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		var pts strings.Builder
		for _, p := range s.pts {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(math.Min(math.Max(p[0], x0), x1)), py(math.Min(math.Max(p[1], y0), y1)))
		}
		op := s.opacity
		if op == 0 {
			op = 1
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-opacity="%.2f" stroke-width="2" points="%s"><title>%s</title></polyline>`,
			s.color, op, strings.TrimSpace(pts.String()), esc(s.name))
	}
	if len(ss) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="13" text-anchor="middle" fill="#6b7280">no data</text>`, w/2, h/2)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// nines maps a quantile to the percentile plot's x: 0.9 → 1, 0.99 → 2.
func nines(q float64) float64 { return -math.Log10(1 - q) }

// latencyChart plots, per server, the latency at each percentile (the
// histograms of every round merged), on a "nines" axis so that the tail
// is as visible as the median.
func latencyChart(results []Result, servers []string, sc string) string {
	var ss []series
	xMax, yMax, yMin := 2.0, 0.0, math.Inf(1)
	for _, s := range servers {
		var h Histogram
		for _, r := range results {
			if r.Server == s && r.Scenario == sc && r.Latency != nil {
				h.Merge(r.Latency)
			}
		}
		if h.n == 0 {
			continue
		}
		top := math.Min(5, math.Ceil(math.Log10(float64(h.n))))
		xMax = math.Max(xMax, top)
		var pts [][2]float64
		var seen uint64
		for i, c := range h.counts {
			if c == 0 {
				continue
			}
			lo, hi := bucketBounds(i)
			v := float64(min(max(lo+(hi-lo)/2, h.min), h.max)) / 1e6
			x := 0.0
			if seen > 0 {
				x = nines(float64(seen) / float64(h.n))
			}
			seen += c
			x2 := top
			if seen < h.n {
				x2 = math.Min(top, nines(float64(seen)/float64(h.n)))
			}
			pts = append(pts, [2]float64{x, v}, [2]float64{x2, v})
			yMax = math.Max(yMax, v)
			yMin = math.Min(yMin, math.Max(v, 0.001))
		}
		ss = append(ss, series{name: fmt.Sprintf("%s: p50 %s ms, p99 %s ms, max %s ms", s,
			formatValue(ms(h.Quantile(0.5))), formatValue(ms(h.Quantile(0.99))), formatValue(ms(h.Max()))), color: colorOf(s), pts: pts})
	}
	xt := []tick{{0, "0%"}, {nines(0.5), "50%"}, {1, "90%"}, {2, "99%"}}
	for k, label := range map[float64]string{3: "99.9%", 4: "99.99%", 5: "99.999%"} {
		if k <= xMax {
			xt = append(xt, tick{k, label})
		}
	}
	if len(ss) > 0 && yMax/yMin > 50 {
		// A tail this long flattens the median on a linear axis: plot
		// log10(ms) instead, ticks at powers of ten.
		for i := range ss {
			for j := range ss[i].pts {
				ss[i].pts[j][1] = math.Log10(math.Max(ss[i].pts[j][1], 0.001))
			}
		}
		yt := logTicks(yMin, yMax)
		return lineChart("latency by percentile", "percentile", "ms (log scale)", ss, xt, yt, 0, xMax, yt[0].v, yt[len(yt)-1].v)
	}
	yt := niceTicks(0, math.Max(yMax*1.05, 0.001), 5)
	return lineChart("latency by percentile", "percentile", "ms", ss, xt, yt, 0, xMax, 0, yt[len(yt)-1].v)
}

// throughputChart plots work per second over the measured phase, one line
// per server and round.
func throughputChart(results []Result, servers []string, sc string) string {
	var ss []series
	xMax, yMax := 1.0, 0.0
	for _, s := range servers {
		for _, r := range results {
			if r.Server != s || r.Scenario != sc || len(r.Timeline) < 2 {
				continue
			}
			var pts [][2]float64
			last := r.Timeline[0]
			for _, smp := range r.Timeline[1:] {
				if dt := smp.T - last.T; dt >= 0.5 || smp == r.Timeline[len(r.Timeline)-1] && dt > 0 {
					rate := float64(smp.Ops-last.Ops) / dt
					pts = append(pts, [2]float64{last.T, rate}, [2]float64{smp.T, rate})
					yMax = math.Max(yMax, rate)
					last = smp
				}
			}
			xMax = math.Max(xMax, last.T)
			ss = append(ss, series{name: fmt.Sprintf("%s round %d", s, max(1, r.Round)), color: colorOf(s),
				opacity: 1 / math.Sqrt(float64(max(1, r.Round))), pts: pts})
		}
	}
	unit := rateMetric[sc]
	yt := niceTicks(0, math.Max(yMax*1.05, 1), 5)
	return lineChart("throughput over time", "seconds into the run", unit, ss, niceTicks(0, xMax, 6), yt, 0, xMax, 0, yt[len(yt)-1].v)
}

// ratioChart draws one horizontal bar per metric: rc.num's advantage over
// rc.den (above 1: better), on a log2 axis from 1/8 to 8.
func ratioChart(summary []Result, rc ratioColumn) string {
	type bar struct {
		label string
		adv   float64
		raw   float64
	}
	var bars []bar
	find := func(server, sc, name string) (Metric, bool) {
		for _, r := range summary {
			if r.Server == server && r.Scenario == sc {
				for _, m := range r.Metrics {
					if m.Name == name {
						return m, true
					}
				}
			}
		}
		return Metric{}, false
	}
	for _, r := range summary {
		if r.Server != rc.num {
			continue
		}
		for _, m := range r.Metrics {
			o, ok := find(rc.den, r.Scenario, m.Name)
			if !ok || o.Value <= 0 || m.Value <= 0 || m.Unit == "" || m.Unit == "%" {
				continue
			}
			raw := m.Value / o.Value
			adv := raw
			if m.LowerBetter {
				adv = 1 / raw
			}
			bars = append(bars, bar{r.Scenario + " · " + m.Name, adv, raw})
		}
	}
	const w, row, ml, mr, mt = 560.0, 18.0, 230.0, 60.0, 34.0
	h := mt + row*float64(len(bars)) + 28
	mid := ml + (w-ml-mr)/2
	scale := (w - ml - mr) / 2 / 3 // log2: 3 = 8×
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" style="flex:0 1 %.0fpx" role="img" aria-label="%s vs %s">`, w, h, w, esc(rc.num), esc(rc.den))
	fmt.Fprintf(&b, `<text x="8" y="20" font-size="14" font-weight="600" fill="#111827">%s ÷ %s</text>`, esc(rc.num), esc(rc.den))
	for _, k := range []float64{0.125, 0.25, 0.5, 1, 2, 4, 8} {
		x := mid + math.Log2(k)*scale
		label := fmt.Sprintf("%g×", k)
		if k < 1 {
			label = fmt.Sprintf("1/%g", 1/k)
		}
		stroke := "#e5e7eb"
		if k == 1 {
			stroke = "#6b7280"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="%s"/><text x="%.1f" y="%.0f" font-size="10" text-anchor="middle" fill="#4b5563">%s</text>`,
			x, x, mt-4, h-22, stroke, x, h-8, label)
	}
	for i, br := range bars {
		y := mt + float64(i)*row
		l := math.Max(-3, math.Min(3, math.Log2(br.adv))) * scale
		x, wd, color := mid, l, "#059669"
		if l < 0 {
			x, wd, color = mid+l, -l, "#dc2626"
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#374151">%s</text>`, ml-8, y+12, esc(br.label))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s = %.2f×</title></rect>`,
			x, y+3, math.Max(wd, 1), row-6, color, esc(br.label), esc(rc.label), br.raw)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" fill="#374151">%.2f×</text>`, w-mr+6, y+12, br.adv)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// metricTable is the text table's rows of one scenario, in HTML.
func metricTable(summary []Result, servers []string, peers []ratioColumn, sc string) string {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString("<table><tr><th>metric</th><th>unit</th>")
	for _, s := range servers {
		fmt.Fprintf(&b, "<th style=\"color:%s\">%s</th>", colorOf(s), esc(s))
	}
	for _, rc := range peers {
		fmt.Fprintf(&b, "<th>%s</th>", esc(rc.label))
	}
	b.WriteString("</tr>\n")
	vals := map[string]map[string]Metric{}
	var names []string
	for _, r := range summary {
		if r.Scenario != sc {
			continue
		}
		for _, m := range r.Metrics {
			if vals[m.Name] == nil {
				vals[m.Name] = map[string]Metric{}
				names = append(names, m.Name)
			}
			vals[m.Name][r.Server] = m
		}
	}
	for _, n := range names {
		var unit string
		var cells strings.Builder
		for _, s := range servers {
			m, ok := vals[n][s]
			if !ok {
				cells.WriteString("<td>-</td>")
				continue
			}
			unit = m.Unit
			fmt.Fprintf(&cells, "<td>%s</td>", formatValue(m.Value))
		}
		for _, rc := range peers {
			t, o := vals[n][rc.num], vals[n][rc.den]
			cls := ""
			if t.Name != "" && o.Name != "" && o.Value != 0 && t.Value != o.Value && t.Unit != "" {
				if (t.Value > o.Value) != t.LowerBetter {
					cls = "better"
				} else {
					cls = "worse"
				}
			}
			fmt.Fprintf(&cells, "<td class=\"%s\">%s</td>", cls, ratio(t, o))
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td>%s</tr>\n", esc(n), esc(unit), cells.String())
	}
	b.WriteString("</table>\n")
	return b.String()
}

package load

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// CurvePoint is one scenario against one server at one connection count:
// the medians over the rounds.
type CurvePoint struct {
	Conns  int    `json:"conns"`
	Result Result `json:"result"`
}

// curveMetrics are the columns of the scaling table: the server's cost
// per unit of work and per connection, which must not grow with the count.
var curveMetrics = []string{"server CPU/op", "server user/op", "server kernel/op", "server mem/conn", "server CPU"}

// runCurve runs every scenario against every server at each of cfg.Curve
// connection counts and prints, per scenario, the cost per operation and
// per connection at each count with the ratio of the largest count's to
// the smallest's: 1.00× is flat, and a rising curve is a defect.
func runCurve(cfg Config, stdout, stderr io.Writer) error {
	names, skipped := cfg.runNames()
	fmt.Fprint(stderr, skipNote(skipped))
	var points []CurvePoint
	for _, n := range cfg.Curve {
		c := cfg
		c.Curve, c.Conns = nil, n
		if err := c.Validate(); err != nil {
			return fmt.Errorf("-curve %d: %w", n, err)
		}
		var results []Result
		for round := range max(1, c.Repeat) {
			for _, sc := range c.Scenarios {
				for _, name := range names {
					t, err := c.target(name, sc)
					if err != nil {
						return err
					}
					fmt.Fprintf(stderr, "== %s: %s at %d connections (round %d)\n", name, sc, n, round+1)
					r, err := runScenario(&c, t, sc, stderr)
					t.stop()
					if err != nil {
						return fmt.Errorf("%s %s at %d: %w", name, sc, n, err)
					}
					r.Round = round + 1
					results = append(results, r)
				}
			}
		}
		for _, r := range medians(results) {
			points = append(points, CurvePoint{Conns: n, Result: r})
		}
	}
	printCurve(stdout, points, names, cfg.Scenarios)
	if cfg.HTMLPath != "" {
		if err := writeCurveHTML(cfg.HTMLPath, &cfg, points, names); err != nil {
			return err
		}
	}
	if cfg.JSONPath != "" {
		b, err := json.MarshalIndent(points, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(cfg.JSONPath, append(b, '\n'), 0o644)
	}
	return nil
}

// printCurve writes one block per scenario and server: a row per
// connection count, a column per curve metric, and a last row with the
// largest count's value over the smallest's.
func printCurve(w io.Writer, points []CurvePoint, servers, scenarios []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"scenario", "server", "conns"}
	for _, m := range curveMetrics {
		head = append(head, m)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, sc := range scenarios {
		for _, srv := range servers {
			var rows []CurvePoint
			for _, p := range points {
				if p.Result.Scenario == sc && p.Result.Server == srv {
					rows = append(rows, p)
				}
			}
			if len(rows) == 0 {
				continue
			}
			for _, p := range rows {
				cells := []string{sc, srv, fmt.Sprint(p.Conns)}
				for _, m := range curveMetrics {
					cells = append(cells, curveCell(p.Result, m))
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
			}
			if len(rows) > 1 {
				first, last := rows[0], rows[len(rows)-1]
				cells := []string{sc, srv, fmt.Sprintf("%d÷%d", last.Conns, first.Conns)}
				for _, m := range curveMetrics {
					a, okA := metricValue(last.Result, m)
					b, okB := metricValue(first.Result, m)
					if okA && okB && b > 0 {
						cells = append(cells, fmt.Sprintf("%.2f×", a/b))
					} else {
						cells = append(cells, "-")
					}
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "units: µs per operation (handshake, delivery, …), KiB per connection, server CPU in s (read from /proc in 10 ms ticks: small counts are coarse); the last row of each block is the largest count over the smallest: flat is 1.00×.")
}

func curveCell(r Result, name string) string {
	if v, ok := metricValue(r, name); ok {
		return formatValue(v)
	}
	return "-"
}

func metricValue(r Result, name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

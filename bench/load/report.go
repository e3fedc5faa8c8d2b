package load

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Metric is one measured figure.
type Metric struct {
	Name        string  `json:"name"`
	Unit        string  `json:"unit"`
	Value       float64 `json:"value"`
	LowerBetter bool    `json:"lower_better,omitempty"`
}

// Result is what one scenario measured against one server.
type Result struct {
	Server   string           `json:"server"`
	Scenario string           `json:"scenario"`
	Round    int              `json:"round"`
	Metrics  []Metric         `json:"metrics"`
	Statuses map[int]int64    `json:"statuses,omitempty"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	// Latency is the distribution behind the scenario's percentiles
	// (handshake, rejection, delivery, cycle or round trip), for -html.
	Latency *Histogram `json:"latency,omitempty"`
	// Timeline is the completed work over time, for -html.
	Timeline []Sample `json:"timeline,omitempty"`

	ops int64 // units of work: handshakes, rejections, deliveries, cycles, round trips
}

// Sample is the work done (handshakes, rejections, deliveries, cycles or
// round trips) by T seconds into the measured phase.
type Sample struct {
	T   float64 `json:"t"`
	Ops int64   `json:"ops"`
}

// latencyPrefix names each scenario's latency in its metrics.
var latencyPrefix = map[string]string{
	"connect": "handshake", "reject": "reject", "fanout": "delivery", "churn": "cycle", "echo": "rtt", "channels": "delivery",
}

// rateMetric names each scenario's throughput metric.
var rateMetric = map[string]string{
	"connect": "handshakes/s", "reject": "rejections/s", "fanout": "deliveries/s", "churn": "cycles/s", "echo": "round trips/s",
	"channels": "deliveries/s",
}

// percentiles are the quantiles every latency is reported at, then max.
var percentiles = []struct {
	name string
	q    float64
}{{"p50", 0.5}, {"p90", 0.9}, {"p95", 0.95}, {"p99", 0.99}}

// addLatency reports h as "<prefix> p50" … "<prefix> p99" and "<prefix> max"
// and keeps it for the HTML report.
func (r *Result) addLatency(h *Histogram) {
	prefix := latencyPrefix[r.Scenario]
	for _, p := range percentiles {
		r.add(prefix+" "+p.name, "ms", ms(h.Quantile(p.q)), true)
	}
	r.add(prefix+" max", "ms", ms(h.Max()), true)
	kept := *h
	r.Latency = &kept
}

func (r *Result) add(name, unit string, v float64, lowerBetter bool) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Unit: unit, Value: v, LowerBetter: lowerBetter})
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// perSecond divides count by the span between two Unix ns times.
func perSecond(count int64, from, to int64) float64 {
	if to <= from || count == 0 {
		return 0
	}
	return float64(count) / (float64(to-from) / 1e9)
}

// fill turns the merged worker figures into the scenario's metrics.
// rss holds the server's resident memory at start, once the tickets are
// issued, and with every connection open.
func (r *Result) fill(t workerResult, rss [3]int64, published int) {
	r.Statuses, r.Errors = t.Statuses, t.Errors
	hs := &t.Handshake
	lat := &t.Latency
	r.ops = t.Messages
	if r.Scenario == "connect" {
		r.ops = t.Opened
	}
	switch r.Scenario {
	case "connect":
		r.add("handshakes/s", "1/s", perSecond(t.Opened, t.FirstDial, t.LastOpen), false)
		r.addLatency(hs)
		r.add("open conns", "", float64(t.Opened), false)
		r.add("failed+rejected", "", float64(t.Failed+t.Rejected), true)
		if rss[2] > 0 && t.Opened > 0 {
			r.add("server RSS at start", "MiB", float64(rss[0])/(1<<20), true)
			r.add("server RSS, tickets issued", "MiB", float64(rss[1])/(1<<20), true)
			r.add("server RSS", "MiB", float64(rss[2])/(1<<20), true)
			// From start, so an upper bound: it includes issuing each
			// ticket over HTTP (the same auth code in every server). From
			// the end of that phase would hide connections instead, as
			// the Go heap reuses the phase's garbage for them.
			r.add("server mem/conn", "KiB", float64(rss[2]-rss[0])/float64(t.Opened)/1024, true)
		}
	case "reject":
		r.add("rejections/s", "1/s", perSecond(t.Messages, t.Begin, t.End), false)
		r.addLatency(hs)
		r.add("answered 401", "", float64(t.Statuses[401]), false)
		r.add("failed", "", float64(t.Failed), true)
	case "fanout", "channels":
		r.add("open conns", "", float64(t.Welcomed), false)
		// Deliveries per second of fan-out work: the deliveries over the
		// summed time each publish took to reach its last connection, so
		// that the pause between publishes does not count.
		var busy time.Duration
		var spread Histogram
		for _, d := range t.Spread {
			busy += time.Duration(d)
			spread.Record(d)
		}
		if busy > 0 {
			r.add("deliveries/s", "1/s", float64(t.Messages)/busy.Seconds(), false)
		}
		r.addLatency(lat)
		r.add("fan-out done p50", "ms", ms(spread.Quantile(0.5)), true)
		want := float64(t.Welcomed) * float64(published)
		if r.Scenario == "channels" { // each connection follows one channel, which gets one message a round
			want = float64(t.Subscribed) * float64(published)
		}
		if want > 0 {
			r.add("delivered", "%", 100*float64(t.Messages)/want, false)
		}
		if t.Messages > 0 {
			// What each delivery cost on the wire, frame headers
			// included: permessage-deflate's saving, beside its CPU.
			r.add("wire bytes/delivery", "B", float64(t.WireBytes)/float64(t.Messages), true)
		}
		if t.DeflateConns > 0 || t.Deflated > 0 {
			r.add("deflate conns", "", float64(t.DeflateConns), false)
			if t.Messages > 0 {
				r.add("compressed", "%", 100*float64(t.Deflated)/float64(t.Messages), false)
			}
		}
	case "churn":
		r.add("cycles/s", "1/s", perSecond(t.Messages, t.Begin, t.End), false)
		r.addLatency(lat)
		r.add("failed", "", float64(t.Failed+t.Dropped+t.Rejected), true)
	case "echo":
		r.add("round trips/s", "1/s", perSecond(t.Messages, t.Begin, t.End), false)
		r.addLatency(lat)
		r.add("open conns", "", float64(t.Opened), false)
	}
}

// printTable writes one row per scenario and metric, one column per server,
// and a turnstile/peer ratio column for each peer.
func printTable(w io.Writer, results []Result, servers []string) {
	type key struct{ sc, name string }
	var rows []key
	vals := map[key]map[string]Metric{}
	for _, r := range results {
		for _, m := range r.Metrics {
			k := key{r.Scenario, m.Name}
			if vals[k] == nil {
				vals[k] = map[string]Metric{}
				rows = append(rows, k)
			}
			vals[k][r.Server] = m
		}
	}
	ratios := clusterRatios(servers)
	peers := peerRatios(servers)
	ratios = append(ratios, peers...)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"scenario", "metric", "unit"}
	head = append(head, servers...)
	for _, rc := range ratios {
		head = append(head, rc.label)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, k := range rows {
		var unit string
		cells := []string{k.sc, k.name, ""}
		for _, s := range servers {
			m, ok := vals[k][s]
			if !ok {
				cells = append(cells, "-")
				continue
			}
			unit = m.Unit
			cells = append(cells, formatValue(m.Value))
		}
		cells[2] = unit
		for _, rc := range ratios {
			cells = append(cells, ratio(vals[k][rc.num], vals[k][rc.den]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	if len(peers) > 0 {
		fmt.Fprintln(w, "ratio = turnstile ÷ peer: above 1 is better for rates, below 1 is better for ms, KiB and MiB.")
	}
	for _, rc := range peers {
		if _, on := splitDeflate(rc.num); on && rc.den == strings.TrimSuffix(rc.num, deflateSuffix) {
			fmt.Fprintln(w, "X+deflate/X = compressed ÷ uncompressed, the same server (permessage-deflate's cost and saving).")
			break
		}
	}
	if len(ratios) > len(peers) {
		fmt.Fprintln(w, "ratio = nodes ÷ first size, on the same Redis: server CPU and RSS are summed over the nodes, Redis's CPU apart.")
	}
}

// ratioColumn is one ratio column of the table: num's value ÷ den's.
type ratioColumn struct{ label, num, den string }

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func ratio(a, b Metric) string {
	if a.Name == "" || b.Name == "" || b.Value == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a.Value/b.Value)
}

// addCPU adds the server's CPU time per unit of the scenario's work, read
// from /proc: it shows the server's own cost even when the machine's other
// work (the load generator, the kernel's TCP handshakes) caps the rates.
// With split, user and kernel time are shown apart.
func (r *Result) addCPU(cpu cpuUsage, split bool) {
	total := cpu.user + cpu.sys
	if total <= 0 || r.ops <= 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(r.ops) }
	r.add("server CPU/op", "µs", per(total), true)
	if split {
		r.add("server user/op", "µs", per(cpu.user), true)
		r.add("server kernel/op", "µs", per(cpu.sys), true)
	}
	r.add("server CPU", "s", total.Seconds(), true)
}

// addClientCPU adds the load generator's own CPU time per operation: when
// it is near the server's, the client shares the limit.
func (r *Result) addClientCPU(user, sys int64) {
	if r.ops <= 0 || user+sys <= 0 {
		return
	}
	r.add("client CPU/op", "µs", float64(user+sys)/1e3/float64(r.ops), true)
	r.add("client kernel/op", "µs", float64(sys)/1e3/float64(r.ops), true)
}

// medians folds the rounds of each server and scenario into one result
// whose every metric is the median over the rounds.
func medians(results []Result) []Result {
	type key struct{ server, sc, name string }
	vals := map[key][]float64{}
	var out []Result
	index := map[[2]string]int{}
	for _, r := range results {
		k2 := [2]string{r.Server, r.Scenario}
		i, ok := index[k2]
		if !ok {
			i = len(out)
			index[k2] = i
			out = append(out, Result{Server: r.Server, Scenario: r.Scenario})
		}
		for _, m := range r.Metrics {
			k := key{r.Server, r.Scenario, m.Name}
			if _, seen := vals[k]; !seen {
				out[i].Metrics = append(out[i].Metrics, Metric{Name: m.Name, Unit: m.Unit, LowerBetter: m.LowerBetter})
			}
			vals[k] = append(vals[k], m.Value)
		}
	}
	for i := range out {
		for j, m := range out[i].Metrics {
			out[i].Metrics[j].Value = median(vals[key{out[i].Server, out[i].Scenario, m.Name}])
		}
	}
	return out
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

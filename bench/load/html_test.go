package load

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleResults is a comparison run as Run would produce it: two servers,
// two scenarios, two rounds, with histograms and timelines.
func sampleResults() []Result {
	var out []Result
	for round := 1; round <= 2; round++ {
		for _, srv := range []struct {
			name  string
			scale int64
		}{{"turnstile", 1}, {"gorilla", 3}} {
			for _, sc := range []string{"connect", "fanout"} {
				var h Histogram
				for i := int64(1); i <= 5000; i++ {
					h.Record(srv.scale * (i%100 + 1) * int64(time.Millisecond) / 10)
				}
				h.Record(srv.scale * 250 * int64(time.Millisecond))
				r := Result{Server: srv.name, Scenario: sc, Round: round}
				r.addLatency(&h)
				r.add(rateMetric[sc], "1/s", float64(30000/srv.scale), false)
				r.add("server RSS", "MiB", float64(50*srv.scale), true)
				r.add("open conns", "", 10000, false)
				for t := 0; t <= 20; t++ {
					r.Timeline = append(r.Timeline, Sample{T: float64(t) / 2, Ops: int64(t) * 15000 / srv.scale})
				}
				out = append(out, r)
			}
		}
	}
	return out
}

func sampleReport(t *testing.T) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Scenarios, cfg.Servers, cfg.Repeat = []string{"connect", "fanout"}, []string{"turnstile", "gorilla"}, 2
	th, _ := ParseThreshold("connect.p99<200ms")
	th2, _ := ParseThreshold("fanout.p99<1ms")
	results := sampleResults()
	vs := evaluate([]Threshold{th, th2}, medians(results), cfg.Servers)
	return renderHTML(&cfg, results, cfg.Servers, vs, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
}

// TestHTMLReportIsSelfContained: charts for every scenario, the ratios and
// the verdicts, and nothing the page would have to fetch.
func TestHTMLReportIsSelfContained(t *testing.T) {
	page := sampleReport(t)
	for _, want := range []string{"<h2>connect</h2>", "<h2>fanout</h2>", "latency by percentile", "throughput over time",
		"turnstile ÷ gorilla", "✓ pass", "✗ missed", "handshake p95", "delivery max", `stroke="#2563eb"`, `stroke="#d97706"`,
		"default-src 'none'"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(page, "<polyline"); n != 2*2+2*2*2 { // latency: server × scenario; throughput: server × round × scenario
		t.Errorf("%d lines drawn, want 12", n)
	}
	// Only the SVG namespace may name a URL; no src, href, @import or url().
	fetches := regexp.MustCompile(`(?i)\bsrc=|\bhref=|@import|url\(|https?://`)
	for _, m := range fetches.FindAllStringIndex(page, -1) {
		if s := page[m[0]:min(len(page), m[0]+40)]; !strings.HasPrefix(s, "http://www.w3.org/2000/svg") {
			t.Errorf("the page refers to something outside itself: %q", s)
		}
	}
}

// TestHTMLReportRendersInChromium opens the report in headless Chromium
// and checks the screenshot: the servers' line colours and the ratio bars
// are painted, so the charts are there for a person to look at.
func TestHTMLReportRendersInChromium(t *testing.T) {
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: apt-get install chromium", chromium)
		}
		t.Skipf("%s is missing (apt-get install chromium); .ci/run installs it", chromium)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte(sampleReport(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-extensions", "--hide-scrollbars", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=1280,2200", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if os.Getenv("KEEP_SCREENSHOT") != "" {
		_ = exec.Command("cp", shot, os.Getenv("KEEP_SCREENSHOT")).Run()
	}
	counts := colourCounts(img, map[string][3]uint8{
		"turnstile line": {0x25, 0x63, 0xeb}, "gorilla line": {0xd9, 0x77, 0x06}, "better bar": {0x05, 0x96, 0x69}})
	for name, n := range counts {
		if n < 200 {
			t.Errorf("%s: %d pixels painted, want a chart's worth (200+)", name, n)
		}
	}
	b := img.Bounds()
	var ink int
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
		}
	}
	if frac := float64(ink) / float64(b.Dx()*b.Dy()/4); frac < 0.03 {
		t.Errorf("screenshot is nearly blank: %.1f%% of pixels not white", 100*frac)
	}
}

// colourCounts counts pixels within a small distance of each colour.
func colourCounts(img image.Image, want map[string][3]uint8) map[string]int {
	out := map[string]int{}
	for name := range want {
		out[name] = 0
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for name, c := range want {
				if near(r>>8, c[0]) && near(g>>8, c[1]) && near(bl>>8, c[2]) {
					out[name]++
				}
			}
		}
	}
	return out
}

func near(v uint32, c uint8) bool {
	d := int(v) - int(c)
	return d > -24 && d < 24
}

// TestHTMLReportPairsCompression: with compressed runs in the report, each
// chart and ratio column sets like against like, as the text table does
// (a compressing peer against compressing turnstile, turnstile+deflate
// against turnstile), never plain turnstile against a compressed run.
func TestHTMLReportPairsCompression(t *testing.T) {
	var results []Result
	for _, r := range sampleResults() {
		results = append(results, r)
		r.Server += deflateSuffix
		results = append(results, r)
	}
	servers := []string{"turnstile", "turnstile" + deflateSuffix, "gorilla", "gorilla" + deflateSuffix}
	cfg := DefaultConfig()
	cfg.Scenarios, cfg.Servers, cfg.Repeat = []string{"connect", "fanout"}, servers, 2
	page := renderHTML(&cfg, results, servers, nil, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	for _, want := range []string{"turnstile ÷ gorilla<", "turnstile+deflate ÷ gorilla+deflate<", "turnstile+deflate ÷ turnstile<",
		"<th>turnstile/gorilla</th>", "<th>turnstile+deflate/gorilla+deflate</th>", "<th>turnstile+deflate/turnstile</th>"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"turnstile ÷ turnstile+deflate", "turnstile ÷ gorilla+deflate", "turnstile/gorilla+deflate", "turnstile/turnstile+deflate"} {
		if strings.Contains(page, bad) {
			t.Errorf("report sets unlike runs against each other: %q", bad)
		}
	}
}

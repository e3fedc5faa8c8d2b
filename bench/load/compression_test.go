package load

import (
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsCompression(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		names     []string
		skipped   []string
		wantError string
	}{
		{[]string{"-servers", "turnstile,gorilla"}, []string{"turnstile", "gorilla"}, nil, ""},
		{[]string{"-servers", "turnstile,gorilla", "-compression", "on"}, []string{"turnstile+deflate", "gorilla+deflate"}, nil, ""},
		{[]string{"-servers", "turnstile,gobwas,gorilla", "-compression", "off, on"},
			[]string{"turnstile", "gobwas", "gorilla", "turnstile+deflate", "gorilla+deflate"}, []string{"gobwas"}, ""},
		{[]string{"-http", "127.0.0.1:1", "-ws", "127.0.0.1:2", "-compression", "on"}, []string{"server+deflate"}, nil, ""},
		{[]string{"-servers", "turnstile", "-compression", "yes"}, nil, nil, "want off, on"},
		{[]string{"-servers", "turnstile", "-compression", "on,on"}, nil, nil, "given twice"},
		{[]string{"-servers", "gobwas,nbio", "-compression", "on"}, nil, nil, "leaves no server"},
		{[]string{"-servers", "turnstile", "-compression", "on", "-nodes", "2", "-scenario", "fanout"}, nil, nil, "-nodes"},
		{[]string{"-servers", "turnstile", "-message-size", "64"}, nil, nil, "-message-size"},
		{[]string{"-servers", "turnstile", "-message-size", "70000"}, nil, nil, "-message-size"},
		{[]string{"-servers", "turnstile,gorilla", "-compression", "off,on", "-scenario", "fanout", "-threshold", "gorilla+deflate:fanout.delivered>=100"},
			[]string{"turnstile", "gorilla", "turnstile+deflate", "gorilla+deflate"}, nil, ""},
	} {
		c, err := ParseFlags(tc.args, io.Discard)
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		names, skipped := c.runNames()
		if !slices.Equal(names, tc.names) || !slices.Equal(skipped, tc.skipped) {
			t.Errorf("%v: names %v skipped %v, want %v and %v", tc.args, names, skipped, tc.names, tc.skipped)
		}
	}
}

func TestPeerRatios(t *testing.T) {
	var labels []string
	for _, rc := range peerRatios([]string{"turnstile", "gorilla", "turnstile+deflate", "gorilla+deflate"}) {
		labels = append(labels, rc.label)
	}
	want := []string{"turnstile/gorilla", "turnstile+deflate/gorilla+deflate", "turnstile+deflate/turnstile", "gorilla+deflate/gorilla"}
	if !slices.Equal(labels, want) {
		t.Errorf("ratio columns %v, want %v", labels, want)
	}
}

// TestFanoutCompressionRun runs fanout against the real turnstile, built
// from this module, and the gorilla peer, each without and with
// -compression on, 1 KiB payloads:
// compressed, every connection agrees deflate, every frame comes with
// RSV1, every payload inflates to exactly what was published, all of it is
// delivered, and it takes fewer bytes on the wire.
func TestFanoutCompressionRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll client needs Linux")
	}
	// The gorilla peer compresses per connection, and the welcome too: a
	// second implementation to inflate.
	bin := buildServers(t, "gorilla")
	cfg := DefaultConfig()
	cfg.Servers, cfg.BinDir, cfg.Compression = []string{"turnstile", "gorilla"}, bin, []bool{false, true}
	cfg.Scenarios, cfg.MessageSize = []string{"fanout"}, 1024
	cfg.Conns, cfg.InFlight, cfg.Sources = 200, 64, 4
	cfg.Messages, cfg.Interval = 5, 30*time.Millisecond
	cfg.Timeout, cfg.LogDir = 60*time.Second, t.TempDir()
	results, table, _ := runResults(t, cfg, nil)
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Server] = r
		if d := metric(t, r, "delivered"); d != 100 || len(r.Errors) > 0 {
			t.Errorf("%s: delivered %v%%, errors %v", r.Server, d, r.Errors)
		}
	}
	if len(results) != 4 {
		t.Fatalf("%d results, want 4: %s", len(results), table)
	}
	for _, s := range cfg.Servers {
		plain, z := byName[s], byName[s+deflateSuffix]
		if n := metric(t, z, "deflate conns"); n != float64(cfg.Conns) {
			t.Errorf("%s: %v connections agreed deflate, want %d", z.Server, n, cfg.Conns)
		}
		if p := metric(t, z, "compressed"); p != 100 {
			t.Errorf("%s: %v%% of deliveries came with RSV1, want 100", z.Server, p)
		}
		wp, wz := metric(t, plain, "wire bytes/delivery"), metric(t, z, "wire bytes/delivery")
		if wp < float64(cfg.MessageSize) || wz >= wp*0.8 {
			t.Errorf("%s: wire bytes/delivery %v uncompressed, %v compressed: want at least the payload, then well below it", s, wp, wz)
		}
	}
	for _, want := range []string{"wire bytes/delivery", "turnstile+deflate/turnstile", "turnstile+deflate/gorilla+deflate"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

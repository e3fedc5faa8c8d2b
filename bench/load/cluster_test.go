package load

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsNodes(t *testing.T) {
	cfg, err := ParseFlags([]string{"-http", "127.0.0.1:1", "-ws", "127.0.0.1:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Nodes, []int{1}) || cfg.clustered() {
		t.Fatalf("default -nodes: %v clustered=%v, want [1] and one server as before", cfg.Nodes, cfg.clustered())
	}
	ok := []struct {
		args  []string
		nodes []int
		names []string
	}{
		{[]string{"-servers", "turnstile", "-nodes", "3", "-scenario", "fanout"}, []int{3}, []string{"turnstile@3"}},
		{[]string{"-servers", "turnstile", "-nodes", "1, 3", "-scenario", "connect,fanout,channels"}, []int{1, 3}, []string{"turnstile@1", "turnstile@3"}},
		{[]string{"-servers", "turnstile", "-nodes", "1,2", "-scenario", "fanout", "-threshold", "turnstile@2:fanout.delivered>=100"}, []int{1, 2}, []string{"turnstile@1", "turnstile@2"}},
		// One node alone is today's server, peers and any scenario allowed.
		{[]string{"-servers", "turnstile,gorilla", "-nodes", "1", "-scenario", "reject"}, []int{1}, nil},
	}
	for _, c := range ok {
		cfg, err := ParseFlags(c.args, io.Discard)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if !slices.Equal(cfg.Nodes, c.nodes) {
			t.Errorf("%v: nodes %v, want %v", c.args, cfg.Nodes, c.nodes)
		}
		if c.names != nil && !slices.Equal(cfg.clusterNames(), c.names) {
			t.Errorf("%v: columns %v, want %v", c.args, cfg.clusterNames(), c.names)
		}
		if cfg.clustered() != (c.names != nil) {
			t.Errorf("%v: clustered=%v", c.args, cfg.clustered())
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"-servers", "turnstile", "-nodes", "0"}, "within 1..16"},
		{[]string{"-servers", "turnstile", "-nodes", "17"}, "within 1..16"},
		{[]string{"-servers", "turnstile", "-nodes", "x"}, "within 1..16"},
		{[]string{"-servers", "turnstile", "-nodes", "3,3"}, "given twice"},
		{[]string{"-servers", "turnstile", "-nodes", " , "}, "at least one"},
		{[]string{"-servers", "gorilla", "-nodes", "3"}, "needs -servers turnstile"},
		{[]string{"-servers", "turnstile,gorilla", "-nodes", "3"}, "needs -servers turnstile"},
		{[]string{"-http", "127.0.0.1:1", "-ws", "127.0.0.1:2", "-nodes", "3"}, "needs -servers turnstile"},
		{[]string{"-servers", "turnstile", "-nodes", "3", "-scenario", "connect,reject"}, `not "reject"`},
		{[]string{"-servers", "turnstile", "-nodes", "3", "-scenario", "echo"}, `not "echo"`},
		// The columns are turnstile@N: a threshold on "turnstile" names none.
		{[]string{"-servers", "turnstile", "-nodes", "3", "-scenario", "fanout", "-threshold", "turnstile:fanout.p99<1s"}, "not in -servers"},
	}
	for _, c := range bad {
		_, err := ParseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		}
	}
	_, err = ParseFlags([]string{"-servers", "nbio", "-nodes", "2"}, io.Discard)
	if !errors.Is(err, errClusterConfig) {
		t.Errorf("peer in cluster mode: %v, want errClusterConfig", err)
	}
}

func TestClusterSpread(t *testing.T) {
	cl := &cluster{}
	for _, a := range []string{"a", "b", "c"} {
		cl.nodes = append(cl.nodes, &target{httpAddr: a + ":http", wsAddr: a + ":ws"})
	}
	tg := &target{cluster: cl}
	want := [][2]string{{"a:http", "b:ws"}, {"b:http", "c:ws"}, {"c:http", "a:ws"}, {"a:http", "b:ws"}}
	for i, w := range want {
		h, ws := tg.jobAddrs(i)
		if h != w[0] || ws != w[1] {
			t.Errorf("worker %d: tickets from %s, connects to %s; want %s, %s", i, h, ws, w[0], w[1])
		}
	}
	single := &target{httpAddr: "h", wsAddr: "w"}
	if h, ws := single.jobAddrs(5); h != "h" || ws != "w" {
		t.Errorf("one server: %s %s", h, ws)
	}
	cfg := DefaultConfig()
	cfg.Nodes = []int{1, 3}
	for size, w := range map[int]int{1: 3, 3: 3} {
		if got := clusterWorkers(&cfg, size); got != w {
			t.Errorf("-nodes 1,3: %d workers for %d nodes, want %d", got, size, w)
		}
	}
	cfg.Nodes, cfg.Conns = []int{2, 3}, 40000 // three workers' worth of connections
	if got := clusterWorkers(&cfg, 2); got != 4 {
		t.Errorf("3 workers on 2 nodes: %d, want 4 (a multiple of the nodes)", got)
	}
}

func TestPrintTableClusterRatio(t *testing.T) {
	results := []Result{
		{Server: "turnstile@1", Scenario: "fanout", Metrics: []Metric{{Name: "server CPU/op", Unit: "µs", Value: 10}}},
		{Server: "turnstile@3", Scenario: "fanout", Metrics: []Metric{{Name: "server CPU/op", Unit: "µs", Value: 15}}},
	}
	var b strings.Builder
	printTable(&b, results, []string{"turnstile@1", "turnstile@3"})
	for _, want := range []string{"turnstile@3/@1", "1.50×", "nodes ÷ first size"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "turnstile ÷ peer") {
		t.Errorf("a cluster table has no peers:\n%s", b.String())
	}
}

// needRedis ends the test when redis-server is missing: failed under CI,
// skipped elsewhere (as internal/redistest does).
func needRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err == nil {
		return
	}
	msg := "redis-server not found: apt-get install redis-server"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestClusterRun starts real clusters (redis-server and turnstile nodes
// built from this module) at one and two nodes and runs connect, fanout
// and channels: every ticket is redeemed at a node other than its
// issuer, both nodes hold half the connections, and every publish at the
// first node reaches every subscriber on both.
func TestClusterRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll client needs Linux")
	}
	needRedis(t)
	bin := buildServers(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // Redis's directory goes here: it must be gone after the run
	cfg := DefaultConfig()
	cfg.Servers, cfg.Nodes, cfg.BinDir = []string{"turnstile"}, []int{1, 2}, bin
	cfg.Scenarios = clusterScenarios
	cfg.Conns, cfg.InFlight, cfg.Sources, cfg.Channels = 300, 64, 4, 10
	cfg.Hold, cfg.Messages, cfg.Interval = 100*time.Millisecond, 3, 30*time.Millisecond
	cfg.Timeout, cfg.LogDir = 60*time.Second, t.TempDir()
	cfg.HTMLPath = filepath.Join(t.TempDir(), "report.html")
	results, table, _ := runResults(t, cfg, nil)
	if len(results) != 2*len(clusterScenarios) {
		t.Fatalf("%d results, want %d", len(results), 2*len(clusterScenarios))
	}
	for _, r := range results {
		size, _ := clusterSize(r.Server)
		perNode := float64(cfg.Conns / size)
		if n := metric(t, r, "nodes"); n != float64(size) {
			t.Errorf("%s %s: %v nodes", r.Server, r.Scenario, n)
		}
		if lo, hi := metric(t, r, "open conns min/node"), metric(t, r, "open conns max/node"); lo != perNode || hi != perNode {
			t.Errorf("%s %s: %v..%v connections per node, want %v on each", r.Server, r.Scenario, lo, hi, perNode)
		}
		if n := metric(t, r, "open conns"); n != float64(cfg.Conns) {
			t.Errorf("%s %s: %v open, want %d (tickets redeemed across nodes)", r.Server, r.Scenario, n, cfg.Conns)
		}
		// Redis's CPU is always reported (the server's only once it is a
		// clock tick or more: a short run may stay under one).
		if v := metric(t, r, "redis CPU"); v < 0 {
			t.Errorf("%s %s: Redis CPU %v", r.Server, r.Scenario, v)
		}
		if r.Scenario != "connect" {
			if d := metric(t, r, "delivered"); d != 100 {
				t.Errorf("%s %s: delivered %v%%, want every publish at node 1 on every node's subscribers", r.Server, r.Scenario, d)
			}
		} else if metric(t, r, "server RSS") <= 0 {
			t.Errorf("%s connect: no RSS", r.Server)
		}
	}
	if !strings.Contains(table, "turnstile@2/@1") {
		t.Errorf("table lacks the ratio column:\n%s", table)
	}
	if page, err := os.ReadFile(cfg.HTMLPath); err != nil || !strings.Contains(string(page), "turnstile@2") {
		t.Errorf("HTML report missing or without the cluster sizes (%v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "turnstile-load-redis-*"))
	if len(left) > 0 {
		t.Errorf("Redis's directory left behind: %v", left)
	}
}

func TestClusterColors(t *testing.T) {
	if colorOf("turnstile@1") == colorOf("turnstile@3") || colorOf("turnstile@3") == colorOf("unknown") {
		t.Errorf("cluster sizes share a colour: @1 %s, @3 %s", colorOf("turnstile@1"), colorOf("turnstile@3"))
	}
}

package load

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.3.4.5:1", true},
		{"[::1]:8081", true},
		{"localhost:8081", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"10.0.0.1:8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"128.0.0.1:80", false},
		{"example.com:80", false},
		{"localhost.example.com:80", false},
		{"127.0.0.1", false}, // no port
	}
	for _, c := range cases {
		err := CheckLoopback(c.addr)
		if (err == nil) != c.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", c.addr, err, c.ok)
		}
	}
	if err := CheckLoopback("192.168.1.1:80"); !errors.Is(err, errNotLoopback) {
		t.Errorf("non-loopback error is %v, want errNotLoopback", err)
	}
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name string
		args string
		err  string // substring of the error; empty: valid
	}{
		{"servers", "-servers turnstile,gorilla -scenario connect,reject", ""},
		{"running server", "-http 127.0.0.1:8080 -ws 127.0.0.1:8081", ""},
		{"no target", "-scenario connect", "give -servers"},
		{"remote http", "-http 10.1.1.1:8080 -ws 127.0.0.1:8081", "not a loopback"},
		{"remote ws", "-http 127.0.0.1:8080 -ws 192.168.0.2:8081", "not a loopback"},
		{"ipv6 ws", "-http 127.0.0.1:8080 -ws [::1]:8081", "IPv4 only"},
		{"bad scenario", "-servers turnstile -scenario flood", "unknown scenario"},
		{"bad server", "-servers nginx", "unknown server"},
		{"zero conns", "-servers turnstile -conns 0", "-conns"},
		{"too many per worker", "-servers turnstile -conns 40000 -workers 2", "too many connections"},
		{"auto workers", "-servers turnstile -conns 40000", ""},
		{"sources", "-servers turnstile -sources 300", "-sources"},
		{"stray arg", "-servers turnstile extra", "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFlags(strings.Fields(c.args), io.Discard)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one containing %q", err, c.err)
			}
		})
	}
}

func TestWorkersAuto(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct{ conns, want int }{{1, 2}, {18000, 2}, {36000, 2}, {36001, 3}} {
		c.Conns = tc.conns
		if got := c.workers(); got != tc.want {
			t.Errorf("conns %d: %d workers, want %d", tc.conns, got, tc.want)
		}
	}
}

func TestParseProcFiles(t *testing.T) {
	rss, err := parseVmRSS([]byte("Name:\tturnstile\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n"))
	if err != nil || rss != 12345*1024 {
		t.Errorf("VmRSS = %d, %v; want %d", rss, err, 12345*1024)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
	// utime 250 and stime 50 ticks; the name holds a space and a ')'.
	stat := "4242 (my )server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 1000000 500"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil || cpu.user != 2500*time.Millisecond || cpu.sys != 500*time.Millisecond {
		t.Errorf("cpu = %+v, %v; want 2.5s user, 0.5s sys", cpu, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestSourcesAndShares(t *testing.T) {
	a, b := sourcesFor(0, 2, 4), sourcesFor(1, 2, 4)
	if strings.Join(a, ",") != "127.0.0.2,127.0.0.4" || strings.Join(b, ",") != "127.0.0.3,127.0.0.5" {
		t.Errorf("sources split %v / %v", a, b)
	}
	if got := sourcesFor(2, 3, 1); len(got) != 1 {
		t.Errorf("fewer sources than workers: worker 2 got %v, want the one source", got)
	}
	total := 0
	for i := range 3 {
		total += share(10, 3, i)
	}
	if total != 10 || share(10, 3, 0) != 4 || share(10, 3, 2) != 3 {
		t.Errorf("share of 10 over 3: %d %d %d", share(10, 3, 0), share(10, 3, 1), share(10, 3, 2))
	}
}

func TestParseMetric(t *testing.T) {
	text := []byte("# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes 4.5219840e+07\n" +
		"process_cpu_seconds_total 12.34\n" +
		"turnstile_conns{state=\"open\"} 3\n")
	if v, err := parseMetric(text, "process_resident_memory_bytes"); err != nil || v != 45219840 {
		t.Errorf("rss %v %v", v, err)
	}
	if v, err := parseMetric(text, "process_cpu_seconds_total"); err != nil || v != 12.34 {
		t.Errorf("cpu %v %v", v, err)
	}
	if _, err := parseMetric(text, "process_resident_memory"); err == nil {
		t.Error("a prefix of a name matched")
	}
}

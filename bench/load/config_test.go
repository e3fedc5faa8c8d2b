package load

import (
	"errors"
	"io"
	"strings"
	"testing"
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

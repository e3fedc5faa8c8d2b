package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientAddrBehindTrustedProxies(t *testing.T) {
	trusted, err := parseTrustedProxies("10.0.0.0/8, 127.0.0.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client, header ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"proxy without header", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"one proxy", "127.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client forges the left part", "127.0.0.1:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"header split over lines", "10.1.2.3:5000", []string{"198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"every hop trusted", "127.0.0.1:5000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage hop", "127.0.0.1:5000", []string{"not-an-ip"}, "127.0.0.1"},
		{"IPv6 proxy", "[::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"mapped IPv4 hop", "127.0.0.1:5000", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/auth", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := trusted.clientAddr(r); got != tc.want {
				t.Fatalf("clientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNoTrustedProxiesIgnoresTheHeader(t *testing.T) {
	r := httptest.NewRequest("POST", "/auth", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := trustedProxies(nil).clientAddr(r); got != "127.0.0.1" {
		t.Fatalf("clientAddr = %q without trusted proxies", got)
	}
}

func TestParseTrustedProxiesErrors(t *testing.T) {
	for _, in := range []string{"10.0.0.0/33", "proxy.local", "1.2.3"} {
		if _, err := parseTrustedProxies(in); err == nil || !strings.Contains(err.Error(), "-trusted-proxies") {
			t.Errorf("%q: err = %v", in, err)
		}
	}
}

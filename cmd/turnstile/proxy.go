package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies are the addresses whose X-Forwarded-For is believed, so
// that the login throttle counts the real client behind a proxy rather
// than the proxy itself.
type trustedProxies []netip.Prefix

func parseTrustedProxies(s string) (trustedProxies, error) {
	var out trustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			addr, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("-trusted-proxies: %q is neither an IP address nor a CIDR prefix", f)
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies: %q is neither an IP address nor a CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (t trustedProxies) contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range t {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request comes from. Only when the peer is a
// trusted proxy is X-Forwarded-For read, from the right, skipping further
// trusted proxies: the entries to the left of the first untrusted one are
// whatever the client chose to send, so they are never believed.
func (t trustedProxies) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !t.contains(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a malformed chain: count the proxy, believe nothing
		}
		if !t.contains(hop) {
			return hop.Unmap().String()
		}
		host = hop.Unmap().String()
	}
	return host
}

package load

import (
	"fmt"
	"slices"
	"strings"
)

// -compression runs servers with permessage-deflate: each started server
// gets -compression on and the clients offer the extension. Such a run is
// its own column, "<server>+deflate", so that "-compression off,on" puts
// both modes of every server side by side in one table, interleaved like
// any servers, with the ratios that the compression target reads:
// turnstile+deflate/turnstile (its cost of compressing once per publish)
// and turnstile+deflate/gorilla+deflate (against compressing per
// connection).

const deflateSuffix = "+deflate"

// canCompress are the servers that negotiate permessage-deflate. The
// gobwas and nbio peers do not (they refuse -compression on), so that
// a run under it skips them rather than pass off uncompressed figures.
// "server" is a running one: it compresses if it was started so.
var canCompress = map[string]bool{"turnstile": true, "gorilla": true, "server": true}

// splitDeflate returns the server a column name runs and whether it runs
// it compressed.
func splitDeflate(name string) (server string, deflate bool) {
	server, deflate = strings.CutSuffix(name, deflateSuffix)
	return server, deflate
}

// parseCompression reads -compression: off, on, or both (off,on).
func parseCompression(s string) ([]bool, error) {
	var out []bool
	for _, f := range splitList(s) {
		var on bool
		switch f {
		case "off":
		case "on":
			on = true
		default:
			return nil, fmt.Errorf("load: -compression %q: want off, on or off,on", s)
		}
		if slices.Contains(out, on) {
			return nil, fmt.Errorf("load: -compression %q: %s given twice", s, f)
		}
		out = append(out, on)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load: -compression %q: want off, on or off,on", s)
	}
	return out, nil
}

// runNames are the columns of a run: each server once per compression
// mode, all uncompressed first, or the cluster sizes under -nodes; and the
// servers skipped because they cannot compress.
func (c *Config) runNames() (names, skipped []string) {
	if c.clustered() {
		return c.clusterNames(), nil
	}
	servers := c.Servers
	if len(servers) == 0 {
		servers = []string{"server"}
	}
	modes := c.Compression
	if len(modes) == 0 {
		modes = []bool{false}
	}
	for _, on := range modes {
		for _, s := range servers {
			switch {
			case !on:
				names = append(names, s)
			case canCompress[s]:
				names = append(names, s+deflateSuffix)
			default:
				skipped = append(skipped, s)
			}
		}
	}
	return names, skipped
}

// compressing reports whether any column of the run compresses.
func (c *Config) compressing() bool { return slices.Contains(c.Compression, true) }

// peerRatios are the ratio columns between servers: turnstile ÷ each peer
// in the same compression mode, then each compressed server ÷ itself
// uncompressed.
func peerRatios(servers []string) []ratioColumn {
	var out []ratioColumn
	for _, s := range servers {
		base, on := splitDeflate(s)
		ref := "turnstile"
		if on {
			ref += deflateSuffix
		}
		if base != "turnstile" && slices.Contains(servers, ref) {
			out = append(out, ratioColumn{label: ref + "/" + s, num: ref, den: s})
		}
	}
	for _, s := range servers {
		if base, on := splitDeflate(s); on && slices.Contains(servers, base) {
			out = append(out, ratioColumn{label: s + "/" + base, num: s, den: base})
		}
	}
	return out
}

// skipNote says which servers a compressed run left out, and why.
func skipNote(skipped []string) string {
	if len(skipped) == 0 {
		return ""
	}
	return fmt.Sprintf("-compression on: skipping %s (no permessage-deflate in that peer)\n", strings.Join(skipped, ", "))
}

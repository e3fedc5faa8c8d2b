package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// buildVersion is what the binary knows about its own build, read once from
// the information the Go toolchain embeds (module version and, when built
// from a git checkout with VCS stamping, the commit).
type buildVersion struct {
	Version   string // module version: a tag, a pseudo-version, or "(devel)"
	Revision  string // VCS commit, "unknown" when not stamped
	Time      string // commit time (RFC 3339), empty when not stamped
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

// readBuildVersion reads the embedded build information. A binary built
// with -buildvcs=false (or by go run) has no revision: it says "unknown"
// rather than inventing one.
func readBuildVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is one line: "turnstile v1.2.0 (rev 1a2b3c4d…, 2026-12-01T20:00:00Z, modified) go1.26.8".
func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "turnstile %s (rev %s", v.Version, v.Revision)
	if v.Time != "" {
		b.WriteString(", " + v.Time)
	}
	if v.Modified {
		b.WriteString(", modified")
	}
	fmt.Fprintf(&b, ") %s %s/%s", v.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// isVersionFlag reports whether args ask for the version (-version or
// --version, also as =true), which is answered before the configuration is
// read so that it works without keys or -dev.
func isVersionFlag(args []string) bool {
	for _, a := range args {
		switch a {
		case "-version", "--version", "-version=true", "--version=true":
			return true
		case "--":
			return false
		}
	}
	return false
}

func printVersion(w io.Writer) {
	fmt.Fprintln(w, readBuildVersion().String())
}

// buildInfoCollector is turnstile_build_info{version,revision,goversion} 1,
// the usual Prometheus way to join a build to the other series.
func buildInfoCollector() prometheus.Collector {
	v := readBuildVersion()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "turnstile_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion},
	})
	g.Set(1)
	return g
}

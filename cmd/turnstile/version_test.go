package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestIsVersionFlag(t *testing.T) {
	for args, want := range map[string]bool{
		"-version": true, "--version": true, "-dev -version": true, "-version=true": true,
		"-dev": false, "": false, "-- -version": false, "-versions": false,
	} {
		if got := isVersionFlag(strings.Fields(args)); got != want {
			t.Errorf("isVersionFlag(%q) = %v, want %v", args, got, want)
		}
	}
}

// TestVersionNeedsNoConfiguration: -version answers without -dev or keys,
// which would otherwise stop the start with status 2.
func TestVersionNeedsNoConfiguration(t *testing.T) {
	out, err := exec.Command(binaryPath, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("turnstile -version: %v\n%s", err, out)
	}
	v := readBuildVersion()
	if !strings.HasPrefix(string(out), "turnstile ") || !strings.Contains(string(out), runtime.Version()) {
		t.Fatalf("-version printed %q, want turnstile <version> … %s", out, runtime.Version())
	}
	if v.GoVersion != runtime.Version() || v.Version == "" || v.Revision == "" {
		t.Fatalf("readBuildVersion() = %+v", v)
	}
}

// TestVersionStampsTheCommit builds from a git checkout with VCS stamping
// (what make build does) and expects the commit in -version and in
// /metrics' turnstile_build_info. Go stamps only where .git is a
// directory, so from a git worktree it builds a local clone of HEAD.
func TestVersionStampsTheCommit(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to stamp", err)
	}
	root := strings.TrimSpace(string(top))
	if st, err := os.Stat(filepath.Join(root, ".git")); err != nil || !st.IsDir() {
		clone := filepath.Join(t.TempDir(), "src")
		if out, err := exec.Command("git", "clone", "-q", "--shared", root, clone).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		root = clone
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return string(out)
	}
	rev := strings.TrimSpace(git("rev-parse", "HEAD"))
	status := git("status", "--porcelain")
	bin := filepath.Join(t.TempDir(), "turnstile")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/turnstile")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	line := string(out)
	if !strings.Contains(line, "(rev "+rev+", ") {
		t.Fatalf("-version %q lacks the commit %s", line, rev)
	}
	if modified := len(status) > 0; strings.Contains(line, ", modified)") != modified {
		t.Fatalf("-version %q: modified should be %v (git status --porcelain: %q)", line, modified, status)
	}
	if !regexp.MustCompile(`, 20\d\d-\d\d-\d\dT`).MatchString(line) {
		t.Fatalf("-version %q lacks the commit time", line)
	}

	saved := binaryPath
	binaryPath = bin
	defer func() { binaryPath = saved }()
	s := startBinary(t)
	metrics := s.metrics(t)
	re := regexp.MustCompile(`(?m)^turnstile_build_info\{goversion="([^"]+)",revision="([^"]+)",version="([^"]+)"\} 1$`)
	m := re.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics lacks turnstile_build_info:\n%s", grepLines(metrics, "build_info"))
	}
	if m[1] != runtime.Version() || m[2] != rev || !strings.Contains(line, "turnstile "+m[3]+" ") {
		t.Fatalf("turnstile_build_info %v disagrees with -version %q", m[1:], line)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

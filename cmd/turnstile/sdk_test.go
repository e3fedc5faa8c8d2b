package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestNodeClientWithWs runs the browser client's bundle in Node with the ws
// package's WebSocket (Node 20 has no global one) against the real binary.
func TestNodeClientWithWs(t *testing.T) {
	script := filepath.Join(filepath.Dir(nodePeer(t)), "sdk.mjs")
	s := startBinary(t)
	runNode(t, script, nil, []string{s.HTTP, "maggie", "secret", s.PublishKey}, "login", "connected", "message", "recovered", "disconnected")
}

// TestJSPackages runs the browser client's unit tests (which also fail when
// the bundle embedded for the demo page is stale) and type-checks the
// Angular example, each in its folder with the node_modules `npm ci` put
// there (.ci/run does that for every package-lock.json).
func TestJSPackages(t *testing.T) {
	for _, dir := range []string{"../../clients/js", "../../examples/angular"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			abs, _ := filepath.Abs(dir)
			missing := ""
			npm, err := exec.LookPath("npm")
			if err != nil {
				missing = "npm is not installed"
			} else if _, err := os.Stat(filepath.Join(abs, "node_modules")); err != nil {
				missing = "node_modules missing: run `npm ci` in " + abs
			}
			if missing != "" {
				if os.Getenv("CI") != "" {
					t.Fatalf("cannot run in CI: %s", missing)
				}
				t.Skip(missing)
			}
			cmd := exec.Command(npm, "test", "--silent")
			cmd.Dir = abs
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm test in %s: %v\n%s", dir, err, out)
			}
		})
	}
}

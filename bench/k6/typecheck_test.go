// Package k6 holds turnstile's k6 scripts; its only Go code is this test,
// which type-checks them against k6's own definitions (@types/k6).
package k6

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tsc returns the TypeScript compiler that npm ci installed here, skipping
// (or failing, in CI) when it is missing.
func tsc(t *testing.T) []string {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join("node_modules", "typescript", "bin", "tsc"))
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or the k6 type definitions are missing in CI (%v): npm ci in bench/k6", err)
		}
		t.Skipf("%v: run npm ci in bench/k6 (needs node and npm) to type-check the k6 scripts", err)
	}
	return []string{node, bin}
}

// TestScriptsTypeCheck runs tsc --checkJs over every script: an API that
// k6 does not have, or a wrong argument, fails here rather than at k6 run.
func TestScriptsTypeCheck(t *testing.T) {
	cmd := tsc(t)
	out, err := exec.Command(cmd[0], cmd[1], "-p", "tsconfig.json").CombinedOutput()
	if err != nil {
		t.Fatalf("tsc -p bench/k6/tsconfig.json: %v\n%s", err, out)
	}
}

// TestTypeCheckCatchesMistakes shows the check has teeth: the same
// configuration refuses a script that calls what k6/websockets lacks and
// one that still uses the legacy k6/ws callback style against it.
func TestTypeCheckCatchesMistakes(t *testing.T) {
	cmd := tsc(t)
	here, _ := os.Getwd()
	for name, script := range map[string]string{
		"unknown method": `import { WebSocket } from 'k6/websockets';
export default function () { const s = new WebSocket('ws://127.0.0.1:1/ws'); s.sendText('x'); }
`,
		"legacy callback": `import { WebSocket } from 'k6/websockets';
export default function () { const s = new WebSocket('ws://127.0.0.1:1/ws'); s.on('message', () => {}); }
`,
		"wrong option type": `/** @type {import('k6/options').Options} */
export const options = { scenarios: { s: { executor: "constant-arrival-rate", rate: "fast" } } };
export default function () {}
`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "bad.js"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := `{"extends": "` + filepath.Join(here, "tsconfig.json") + `", "compilerOptions": {"typeRoots": ["` +
			filepath.Join(here, "node_modules", "@types") + `"]}, "include": ["bad.js"]}`
		if err := os.WriteFile(filepath.Join(dir, "tsconfig.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cmd[0], cmd[1], "-p", filepath.Join(dir, "tsconfig.json")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bad.js") {
			t.Errorf("%s: tsc accepted it (%v)\n%s", name, err, out)
		}
	}
}

package load

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// profileEnv names the file a started turnstile writes its CPU profile to;
// SIGUSR1 starts the profile and a second SIGUSR1 stops it, so that it
// covers the measured phase only, not the ticket fetching before it.
const profileEnv = "TURNSTILE_CPUPROFILE"

// profileTo arranges for a started turnstile to profile the scenario into
// cfg.ProfileDir/<server>-<scenario>.pprof. The peers have no such hook.
func (t *target) profileTo(cfg *Config, name, scenario string) error {
	if server, _ := splitDeflate(name); cfg.ProfileDir == "" || server != "turnstile" {
		return nil
	}
	dir, err := filepath.Abs(cfg.ProfileDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("load: -server-cpuprofile: %w", err)
	}
	t.cmd.Env = append(t.cmd.Env, profileEnv+"="+filepath.Join(dir, name+"-"+scenario+".pprof"))
	t.profiling = true
	return nil
}

// profileMark toggles the started server's CPU profile.
func (t *target) profileMark() {
	if t.profiling && t.cmd != nil {
		_ = t.cmd.Process.Signal(syscall.SIGUSR1)
	}
}

//go:build !linux

package load

import "os/exec"

// startPinned ignores cpus where CPU affinity is not available.
func startPinned(cmd *exec.Cmd, _ []int) error { return cmd.Start() }

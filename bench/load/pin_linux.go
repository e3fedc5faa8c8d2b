//go:build linux

package load

import (
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// startPinned starts cmd confined to cpus (all CPUs when cpus is empty).
// The child inherits the CPU mask of the thread that forks it, so the
// mask is set on a locked thread around Start and then restored; a Go
// child also sizes GOMAXPROCS from it.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return err
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return err
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); err == nil {
		err = rerr
	}
	return err
}

//go:build unix

package ticket

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) of the whole process so far,
// garbage collector included: what a benchmark's cpu-ns/op divides.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

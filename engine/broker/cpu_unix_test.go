//go:build unix

package broker

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time this process has used. On a shared machine
// the wall-clock ns/op of a benchmark mostly measures the neighbours;
// CPU per op does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerOp reports the process's CPU time per operation since start as
// cpu-ns/op (garbage collection included).
func cpuPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

//go:build !unix

package broker

import (
	"testing"
	"time"
)

func processCPU() time.Duration                  { return 0 }
func cpuPerOp(b *testing.B, start time.Duration) {}

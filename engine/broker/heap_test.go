package broker

import (
	"runtime"
	"strconv"
	"testing"
)

// TestHeapPerChannel measures what a subscribed channel that never had a
// message costs (an idle user's personal channel: a count in its shard,
// no state; the name is the caller's) and that unsubscribing gives it
// back.
func TestHeapPerChannel(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes heap sizes; run without -race")
	}
	const n = 50000
	m, _ := start(t, MemoryConfig{})
	names := make([]string, n)
	for i := range names {
		names[i] = "chan:" + strconv.Itoa(i)
	}
	before := heapInUse()
	for _, name := range names {
		subscribe(t, m, name)
	}
	during := heapInUse()
	per := float64(during-before) / n
	t.Logf("%.0f bytes per subscribed channel without messages", per)
	if per > 64 { // a channel state with its map entry and name copy: ~220
		t.Errorf("%.0f bytes per subscribed channel without messages, want at most 64", per)
	}
	for _, name := range names {
		if err := m.Unsubscribe(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Stats(); st.Channels != 0 {
		t.Fatalf("%d channels after every unsubscribe", st.Channels)
	}
	// The states are gone at once; the shard maps' buckets at the next
	// sweep (Go maps do not shrink, so the sweep rebuilds them).
	m.sweep()
	after := heapInUse()
	left := float64(after-before) / n
	t.Logf("%.1f bytes per channel left after freeing and a sweep", left)
	if left > 2 {
		t.Errorf("%.0f bytes per channel left after freeing (had %.0f)", left, per)
	}
	runtime.KeepAlive(names)
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

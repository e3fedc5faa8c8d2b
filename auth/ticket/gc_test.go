package ticket

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The garbage collector's view of a store: /gc/scan/heap:bytes is the heap
// it must scan (objects with pointers) as of the last cycle. Tickets in a Map
// add nothing to it, so a full Map costs the collector's mark phase what an
// empty one does; the map before (oldmap_test.go) adds its table and an
// entry per ticket.

// scannableHeap forces a collection and returns the heap the collector
// scans.
func scannableHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// fill puts n known tickets into s (no crypto/rand) and returns their
// texts.
func fill(tb testing.TB, s benchStore, n int) [][]byte {
	tb.Helper()
	texts := make([][]byte, 0, n)
	for _, t := range benchTickets(n) {
		got, err := s.put(t.ticket, benchClaims, t0, time.Minute)
		if err != nil {
			continue // the old map's put cannot retry a full bucket
		}
		texts = append(texts, text(got))
	}
	return texts
}

// scanCost returns the scannable heap that an empty store adds, and what
// the same store adds holding live tickets.
func scanCost(tb testing.TB, make func() benchStore, live int) (empty, full int64) {
	base := scannableHeap()
	s := make()
	empty = int64(scannableHeap()) - int64(base)
	fill(tb, s, live)
	full = int64(scannableHeap()) - int64(base)
	runtime.KeepAlive(s)
	return empty, full
}

func TestGCDoesNotScanTickets(t *testing.T) {
	if scannableHeap() == 0 {
		t.Skip("runtime/metrics has no /gc/scan/heap:bytes here")
	}
	const live = batch // 64K tickets in a 1M-capacity store
	empty, full := scanCost(t, func() benchStore { return NewMap(MapConfig{}) }, live)
	oldEmpty, oldFull := scanCost(t, func() benchStore { return newBaseMap(baseMapConfig{}) }, live)
	t.Logf("scannable heap added by a 1M-capacity store, empty / with %d live tickets: Map %d / %d bytes, old map %d / %d bytes",
		live, empty, full, oldEmpty, oldFull)
	// The old map shows that the measure sees pointerful tickets: an entry
	// of ~128 bytes each.
	if oldFull-oldEmpty < live*64 {
		t.Fatalf("old map: %d live tickets added %d scannable bytes; the measure is not seeing them", live, oldFull-oldEmpty)
	}
	// The Map's tickets add only their chunks' headers (48 bytes per 4 KiB
	// chunk, ~70 tickets each): allow 128 KiB, against the old map's 8 MiB.
	if full-empty > 128<<10 {
		t.Fatalf("Map: %d live tickets added %d scannable bytes; want ≤ 128 KiB", live, full-empty)
	}
	if full > 1<<20 {
		t.Fatalf("Map: a 1M-capacity store with %d live tickets has %d scannable bytes; want ≤ 1 MiB", live, full)
	}
}

// gcRivals are the stores the GC and residency benchmarks compare, all at
// the default capacity where one applies.
var gcRivals = []struct {
	name string
	make func() benchStore
}{
	{"turnstile_cap1M", func() benchStore { return NewMap(MapConfig{}) }},
	{"oldmap_cap1M", func() benchStore { return newBaseMap(baseMapConfig{}) }},
	{"syncmap", func() benchStore { return new(syncMapStore) }},
}

// BenchmarkGC runs one full collection per op with a store holding 0 or
// 64K live tickets: cpu-ns/op is the collector's work per cycle (nothing
// else runs), pause-ns/gc its stop-the-world pauses, scan-B the heap it
// scans.
//
//	go test ./auth/ticket -run x -bench GC -benchtime 200x -count 6
func BenchmarkGC(b *testing.B) {
	for _, r := range gcRivals {
		for _, live := range []int{0, batch} {
			b.Run(r.name+"/live"+strconv.Itoa(live), func(b *testing.B) {
				s := r.make()
				fill(b, s, live)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				start := processCPU()
				for range b.N {
					runtime.GC()
				}
				cpu := processCPU() - start
				b.StopTimer()
				runtime.ReadMemStats(&after)
				reportCPU(b, cpu)
				if n := after.NumGC - before.NumGC; n > 0 {
					b.ReportMetric(float64(after.PauseTotalNs-before.PauseTotalNs)/float64(n), "pause-ns/gc")
				}
				b.ReportMetric(float64(scannableHeap()), "scan-B")
				runtime.KeepAlive(s)
			})
		}
	}
}

// BenchmarkResident10k builds a store and puts 10k live tickets in it, per
// op, and reports what that added: heap-B (HeapInuse, spans in use, after a
// collection) and rss-B (the process's resident set, Linux only). RSS is
// only clean for the first store a process builds (later ones reuse the
// pages earlier ones dirtied), so run one store per command, and repeat the
// command for a median:
//
//	go test ./auth/ticket -run x -bench 'Resident10k/turnstile_cap1M$' -benchtime 1x -count 1
func BenchmarkResident10k(b *testing.B) {
	const live = 10000
	for _, r := range gcRivals {
		b.Run(r.name, func(b *testing.B) {
			var heap, rss int64
			keep := make([]benchStore, 0, b.N)
			for range b.N {
				h0, r0 := heapInuse(), residentBytes()
				s := r.make()
				fill(b, s, live)
				heap += int64(heapInuse()) - int64(h0)
				rss += residentBytes() - r0
				keep = append(keep, s)
			}
			b.ReportMetric(float64(heap)/float64(b.N), "heap-B")
			b.ReportMetric(float64(rss)/float64(b.N), "rss-B")
			b.ReportMetric(float64(heap)/float64(b.N)/live, "heap-B/ticket")
			runtime.KeepAlive(keep)
		})
	}
}

// heapInuse is HeapInuse after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// residentBytes is the process's resident set size, or 0 where
// /proc/self/statm does not exist.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

package broker

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// naiveHistory is the obvious alternative the ring must beat: one mutex
// over a map of per-channel slices, appended to and resliced from the
// front (so append keeps reallocating as the window slides).
type naiveHistory struct {
	mu   sync.Mutex
	size int
	m    map[string]*naiveChannel
}

type naiveChannel struct {
	top  uint64
	msgs []Publication
}

func (n *naiveHistory) publish(ch string, data []byte) uint64 {
	cp := append([]byte(nil), data...)
	n.mu.Lock()
	c := n.m[ch]
	if c == nil {
		c = &naiveChannel{}
		n.m[ch] = c
	}
	c.top++
	c.msgs = append(c.msgs, Publication{Channel: ch, Offset: c.top, Data: cp})
	if len(c.msgs) > n.size {
		c.msgs = c.msgs[1:]
	}
	off := c.top
	n.mu.Unlock()
	return off
}

// nopHandler stands for the hub: it returns at once.
type nopHandler struct{ n atomic.Int64 }

func (h *nopHandler) HandlePublication(Publication) { h.n.Add(1) }
func (h *nopHandler) HandleBroadcast([]byte)        {}
func (h *nopHandler) HandleDisconnect(Disconnect)   {}

var benchData = []byte(`{"text":"hello, this is a sixty-four byte notification payload."}`)

func benchMemory(b *testing.B) *Memory {
	m, err := NewMemory(MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(&nopHandler{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkHistoryAppend is one publish to one subscribed channel whose
// history is full (the steady state): offset, copy, append, trim, delivery.
func BenchmarkHistoryAppend(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		m := benchMemory(b)
		if err := m.Subscribe(ctx, "news"); err != nil {
			b.Fatal(err)
		}
		for range DefaultHistorySize * 2 {
			m.Publish(ctx, "news", benchData, PublishOptions{})
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for b.Loop() {
			if _, err := m.Publish(ctx, "news", benchData, PublishOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		cpuPerOp(b, cpu)
	})
	b.Run("naive", func(b *testing.B) {
		n := &naiveHistory{size: DefaultHistorySize, m: map[string]*naiveChannel{}}
		for range DefaultHistorySize * 2 {
			n.publish("news", benchData)
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for b.Loop() {
			n.publish("news", benchData)
		}
		cpuPerOp(b, cpu)
	})
}

// BenchmarkHistoryAppendParallel publishes from GOMAXPROCS goroutines to
// 1,024 channels: the sharded channels against one mutex.
func BenchmarkHistoryAppendParallel(b *testing.B) {
	names := make([]string, 1024)
	for i := range names {
		names[i] = "chan:" + strconv.Itoa(i)
	}
	b.Run("memory", func(b *testing.B) {
		m := benchMemory(b)
		var next atomic.Uint64
		b.ReportAllocs()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(7919)
			for pb.Next() {
				i++
				if _, err := m.Publish(ctx, names[i%1024], benchData, PublishOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		cpuPerOp(b, cpu)
	})
	b.Run("naive", func(b *testing.B) {
		n := &naiveHistory{size: DefaultHistorySize, m: map[string]*naiveChannel{}}
		var next atomic.Uint64
		b.ReportAllocs()
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(7919)
			for pb.Next() {
				i++
				n.publish(names[i%1024], benchData)
			}
		})
		cpuPerOp(b, cpu)
	})
}

// BenchmarkHistoryRead is a recovery read of 100 missed messages.
func BenchmarkHistoryRead(b *testing.B) {
	m := benchMemory(b)
	var pos Position
	for range DefaultHistorySize {
		r, _ := m.Publish(ctx, "news", benchData, PublishOptions{})
		pos = r.Position
	}
	since := Position{Offset: pos.Offset - 100, Epoch: pos.Epoch}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		pubs, _, err := m.History(ctx, "news", since)
		if err != nil || len(pubs) != 100 {
			b.Fatal(len(pubs), err)
		}
	}
	cpuPerOp(b, cpu)
}

// BenchmarkHistoryEvict publishes round-robin to 1,024 channels with
// HistoryMaxBytes full, so that every publish evicts the globally oldest
// message, beside the same publishes under the limit: the ratio is the
// cost of the global max-bytes order.
func BenchmarkHistoryEvict(b *testing.B) {
	names := make([]string, 1024)
	for i := range names {
		names[i] = "chan:" + strconv.Itoa(i)
	}
	for _, bc := range []struct {
		name     string
		maxBytes int64
	}{{"evicting", 1 << 20}, {"under-limit", 1 << 30}} {
		b.Run(bc.name, func(b *testing.B) {
			m, err := NewMemory(MemoryConfig{HistoryMaxBytes: bc.maxBytes})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Start(&nopHandler{}); err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			i := 0
			for ; i < 16*1024; i++ { // past 1 MiB: 128-byte messages
				m.Publish(ctx, names[i%1024], benchData, PublishOptions{})
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for b.Loop() {
				i++
				if _, err := m.Publish(ctx, names[i%1024], benchData, PublishOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			cpuPerOp(b, cpu)
			b.StopTimer()
			if st := m.Stats(); st.HistoryBytes > bc.maxBytes {
				b.Fatalf("%d bytes over the limit %d", st.HistoryBytes, bc.maxBytes)
			}
		})
	}
}

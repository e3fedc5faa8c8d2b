package redis

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/engine/broker"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// latencyHandler records, per publication, the time from its publish to
// its delivery (the publisher puts its send time in the data).
type latencyHandler struct {
	mu   sync.Mutex
	lat  []time.Duration
	want int
	done chan struct{}
}

func (h *latencyHandler) HandlePublication(p broker.Publication) {
	sent, _ := strconv.ParseInt(string(p.Data), 10, 64)
	d := time.Since(time.Unix(0, sent))
	h.mu.Lock()
	h.lat = append(h.lat, d)
	if len(h.lat) == h.want {
		close(h.done)
	}
	h.mu.Unlock()
}
func (h *latencyHandler) HandleBroadcast([]byte)             {}
func (h *latencyHandler) HandleDisconnect(broker.Disconnect) {}

// Publish → deliver, beside the embedded broker of one node: through Redis, one publisher goroutine at a time
// (latency, not throughput): the subscriber is the publishing node itself
// (1 node) or another node (cross-node), and with two more subscribed
// nodes (3 nodes: every publication delivered three times).
//
//	go test -run '^$' -bench Delivery -benchmem ./engine/broker/redis
func BenchmarkDelivery(b *testing.B) {
	srv := redistest.Start(b)
	b.Run("embedded/1node", func(b *testing.B) {
		// The alternative: the in-process broker of a single node.
		h := &latencyHandler{want: b.N, done: make(chan struct{})}
		m, err := broker.NewMemory(broker.MemoryConfig{})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(h); err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if err := m.Subscribe(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		runDelivery(b, m, []*latencyHandler{h})
	})
	for _, tc := range []struct {
		name        string
		subscribers int
		self        bool
	}{{"1node", 1, true}, {"cross-node", 1, false}, {"3nodes", 3, false}} {
		b.Run("redis/"+tc.name, func(b *testing.B) {
			var handlers []*latencyHandler
			for range tc.subscribers {
				handlers = append(handlers, &latencyHandler{want: b.N, done: make(chan struct{})})
			}
			var pub *Broker
			if tc.self {
				pub = benchNode(b, srv.Addr, handlers[0])
			} else {
				pub = benchNode(b, srv.Addr, &latencyHandler{})
			}
			for i, h := range handlers {
				node := pub
				if !tc.self || i > 0 {
					node = benchNode(b, srv.Addr, h)
				}
				if err := node.Subscribe(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			runDelivery(b, pub, handlers)
		})
	}
}

// runDelivery publishes b.N messages through pub, one at a time, and
// reports the publish→deliver latency over every handler.
func runDelivery(b *testing.B, pub broker.Broker, handlers []*latencyHandler) {
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		data := strconv.AppendInt(nil, time.Now().UnixNano(), 10)
		if _, err := pub.Publish(ctx, "bench", data, broker.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, h := range handlers {
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			b.Fatal("deliveries missing")
		}
	}
	b.StopTimer()
	var all []time.Duration
	for _, h := range handlers {
		all = append(all, h.lat...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100])/1e3, "p99-µs")
}

func benchNode(b *testing.B, addr string, h broker.Handler) *Broker {
	b.Helper()
	c := newClient(b, addr)
	n, err := New(Config{Shards: c})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(h); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

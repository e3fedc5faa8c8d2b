package broker

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var stressTime = flag.Duration("broker.stress", 300*time.Millisecond, "how long TestConcurrentEverything runs")

// TestConcurrentEverything runs publishers, readers, subscribe toggles and
// a fast sweep at once against small limits (under -race in make test),
// then checks that the accounting matches the history actually held and
// that every publication read back carries the data published at its
// offset.
func TestConcurrentEverything(t *testing.T) {
	const payload = 40
	maxBytes := int64(50 * (payload + 10 + entryOverhead))
	m, _ := start(t, MemoryConfig{HistorySize: 8, HistoryTTL: 30 * time.Millisecond,
		HistoryMaxBytes: maxBytes, SweepInterval: time.Millisecond})
	names := make([]string, 12)
	for i := range names {
		names[i] = "ch" + strconv.Itoa(i)
	}
	var published sync.Map // channel/epoch/offset → data
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ch := names[(i*7+p)%len(names)]
				data := fmt.Sprintf("%d/%d/%s", p, i, strings.Repeat("x", payload))
				key := ""
				if i%5 == 0 {
					key = "k" + strconv.Itoa(i%20)
				}
				res, err := m.Publish(ctx, ch, []byte(data), PublishOptions{IdempotencyKey: key})
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Duplicate {
					published.Store(fmt.Sprint(ch, "/", res.Position.Epoch, "/", res.Position.Offset), data)
				}
			}
		}()
	}
	type read struct {
		ch   string
		pubs []Publication
	}
	reads := make(chan read, 1<<16)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ch := names[(i+r)%len(names)]
				subscribed := i%3 == 0
				if subscribed {
					if err := m.Subscribe(ctx, ch); err != nil {
						t.Error(err)
						return
					}
				}
				pos, err := m.Position(ctx, ch)
				if err != nil {
					t.Error(err)
					return
				}
				since := Position{Offset: pos.Offset - min(pos.Offset, uint64(i%10)), Epoch: pos.Epoch}
				pubs, _, err := m.History(ctx, ch, since)
				if err == nil && len(pubs) > 0 {
					for j, p := range pubs {
						if p.Offset != since.Offset+1+uint64(j) {
							t.Errorf("%s: history not contiguous from %d: %d at %d", ch, since.Offset, p.Offset, j)
						}
					}
					select {
					case reads <- read{ch, pubs}:
					default:
					}
				}
				if subscribed {
					if err := m.Unsubscribe(ctx, ch); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	time.Sleep(*stressTime)
	close(stop)
	wg.Wait()
	close(reads)
	n := 0
	for r := range reads {
		for _, p := range r.pubs {
			want, ok := published.Load(fmt.Sprint(r.ch, "/", p.Epoch, "/", p.Offset))
			if !ok || want.(string) != string(p.Data) {
				t.Fatalf("%s offset %d epoch %s: read %q, published %q", r.ch, p.Offset, p.Epoch, p.Data, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no history was read back: the test checked nothing")
	}
	// The accounting agrees with what the rings hold.
	var msgs, bytes int64
	var chans int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for _, c := range s.chans {
			c.mu.Lock()
			chans++
			msgs += int64(c.hist.len())
			for j := range c.hist.len() {
				bytes += c.hist.at(j).size()
			}
			if c.lo.Load() != c.top+1-uint64(c.hist.len()) {
				t.Errorf("%s: lo %d, top %d, %d kept", c.name, c.lo.Load(), c.top, c.hist.len())
			}
			c.mu.Unlock()
		}
		s.mu.RUnlock()
	}
	st := m.Stats()
	if st.Messages != msgs || st.HistoryBytes != bytes || st.Channels != chans {
		t.Fatalf("stats %+v; rings hold %d messages, %d bytes in %d channels", st, msgs, bytes, chans)
	}
	if bytes > maxBytes {
		t.Fatalf("%d bytes held, limit %d", bytes, maxBytes)
	}
	// Everything expires and every channel is freed.
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats() != (MemoryStats{}) {
		if time.Now().After(deadline) {
			t.Fatalf("not freed after the TTL: %+v", m.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // one more sweep: the queues go too
	for i := range m.fifos {
		f := &m.fifos[i]
		f.mu.Lock()
		if len(f.q) != 0 {
			t.Errorf("eviction stripe %d keeps %d entries with no history left", i, len(f.q))
		}
		f.mu.Unlock()
	}
}

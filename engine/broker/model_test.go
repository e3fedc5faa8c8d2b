package broker

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var modelOps = flag.Int("model.ops", 20000, "operations per seed of TestMemoryAgainstModel")

// model is the reference the embedded broker must agree with: every rule
// written the plainest way (slices, full scans), driven by one goroutine.
// Expired history is trimmed when the clock moves (the test sweeps the
// broker at the same moments), so laziness cannot make them differ.
type model struct {
	size     int
	ttl      int64
	maxBytes int64
	now      int64
	seq      uint64
	bytes    int64
	chans    map[string]*modelChan
	lost     map[string]bool // names freed with messages: later lives get unique epochs
	vacant   map[string]int  // subscriptions of channels without state (never lost)
	epochs   int             // unique epochs handed out (0 is the zero epoch)
	seen     map[string]int  // how often each rule fired: the test's coverage
}

type modelChan struct {
	epoch int // 0: the zero epoch; else unique
	top   uint64
	msgs  []modelMsg
	subs  int
	keys  map[string]modelKey
}

type modelMsg struct {
	off  uint64
	at   int64
	seq  uint64
	data string
}

type modelKey struct {
	off uint64
	exp int64
}

func (m *model) get(ch string) *modelChan {
	c := m.chans[ch]
	if c == nil {
		c = &modelChan{keys: map[string]modelKey{}, subs: m.vacant[ch]}
		delete(m.vacant, ch)
		if m.lost[ch] {
			m.epochs++
			c.epoch = m.epochs
		}
		m.chans[ch] = c
	}
	return c
}

func (m *model) free(ch string, c *modelChan) {
	if c.top > 0 {
		m.lost[ch] = true
	}
	delete(m.chans, ch)
}

func msgSize(data string) int64 { return int64(len(data)) + entryOverhead }

func (m *model) dropOldest(c *modelChan) {
	m.bytes -= msgSize(c.msgs[0].data)
	c.msgs = c.msgs[1:]
}

// publish returns the offset, the epoch and whether it was a duplicate.
func (m *model) publish(ch, data, key string) (uint64, int, bool) {
	c := m.get(ch)
	if key != "" {
		if k, ok := c.keys[key]; ok && k.exp > m.now {
			m.seen["duplicate"]++
			return k.off, c.epoch, true
		}
	}
	c.top++
	if len(c.msgs) == m.size {
		m.seen["size trim"]++
		m.dropOldest(c)
	}
	m.seq++
	c.msgs = append(c.msgs, modelMsg{off: c.top, at: m.now, seq: m.seq, data: data})
	m.bytes += msgSize(data)
	if key != "" {
		c.keys[key] = modelKey{off: c.top, exp: m.now + m.ttl}
	}
	for m.bytes > m.maxBytes {
		var oldest *modelChan
		for _, o := range m.chans {
			if len(o.msgs) > 0 && (oldest == nil || o.msgs[0].seq < oldest.msgs[0].seq) {
				oldest = o
			}
		}
		m.seen["max-bytes eviction"]++
		m.dropOldest(oldest)
	}
	return c.top, c.epoch, false
}

func (m *model) idle(c *modelChan) bool { return c.subs == 0 && len(c.msgs) == 0 && len(c.keys) == 0 }

func (m *model) advance(d int64) {
	m.now += d
	for name, c := range m.chans {
		for len(c.msgs) > 0 && c.msgs[0].at <= m.now-m.ttl {
			m.seen["ttl trim"]++
			m.dropOldest(c)
		}
		for k, v := range c.keys {
			if v.exp <= m.now {
				delete(c.keys, k)
			}
		}
		if m.idle(c) {
			m.seen["freed by sweep"]++
			m.free(name, c)
		}
	}
}

// subscribe counts a subscription: on the state if there is one or the
// name is lost (its unique epoch needs a state to live in), else beside it.
func (m *model) subscribe(ch string) {
	if m.chans[ch] == nil && !m.lost[ch] {
		m.seen["subscribed without state"]++
		m.vacant[ch]++
		return
	}
	m.get(ch).subs++
}

func (m *model) subsOf(ch string) int {
	if c := m.chans[ch]; c != nil {
		return c.subs
	}
	return m.vacant[ch]
}

func (m *model) unsubscribe(ch string) bool {
	c := m.chans[ch]
	if c == nil && m.vacant[ch] > 0 {
		if m.vacant[ch]--; m.vacant[ch] == 0 {
			delete(m.vacant, ch)
		}
		return true
	}
	if c == nil || c.subs == 0 {
		return false
	}
	c.subs--
	if m.idle(c) {
		m.seen["freed by unsubscribe"]++
		m.free(ch, c)
	}
	return true
}

// history returns the messages after since (epoch -1: a foreign one), or
// false if unrecoverable.
func (m *model) history(ch string, sinceOff uint64, sinceEpoch int) ([]modelMsg, bool) {
	c := m.chans[ch]
	if c == nil && !m.lost[ch] && sinceEpoch == 0 && sinceOff == 0 {
		m.seen["history: no state, zero epoch"]++
		return nil, true
	}
	if c == nil || sinceEpoch != c.epoch || sinceOff > c.top {
		m.seen["history: other epoch or past the top"]++
		return nil, false
	}
	if sinceOff == c.top {
		m.seen["history: at the top"]++
		return nil, true
	}
	if len(c.msgs) == 0 || c.msgs[0].off > sinceOff+1 {
		m.seen["history: trimmed"]++
		return nil, false
	}
	m.seen["history: recovered"]++
	i := slices.IndexFunc(c.msgs, func(x modelMsg) bool { return x.off == sinceOff+1 })
	return c.msgs[i:], true
}

// TestMemoryAgainstModel drives the broker and the model with the same
// random operations and compares every answer: offsets, duplicates,
// epochs (the zero epoch until a life with messages is lost, then one
// per life, never reused), history all-or-nothing,
// the handler's deliveries and the stats.
func TestMemoryAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, *modelOps) })
	}
}

func runModel(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, seed*7))
	size := 1 + rng.IntN(8)
	ttl := 10 * time.Second
	// Room for about 2 to 8 full channels of the 6: every limit binds.
	maxBytes := int64(size*(2+rng.IntN(7))) * (64 + entryOverhead)
	clk := newClock()
	m, rec := start(t, MemoryConfig{HistorySize: size, HistoryTTL: ttl, HistoryMaxBytes: maxBytes, Now: clk.Now})
	ref := &model{size: size, ttl: int64(ttl), maxBytes: maxBytes, chans: map[string]*modelChan{}, lost: map[string]bool{}, vacant: map[string]int{}, seen: map[string]int{}}

	// q1 and q2 are quiet: subscribed and left, rarely published to, so
	// that lives without messages come and go.
	names := []string{"a", "b", "c", "d", "e", "#maggie", "q1", "q2"}
	// The broker's epoch strings against the model's epoch numbers: one
	// string per number (the zero epoch shared by every channel), and no
	// string for two numbers.
	epochStr := map[int]string{}
	epochID := map[string]int{}
	idsOf := map[string][]int{} // epochs seen per channel
	learn := func(ch string, id int, epoch string) {
		t.Helper()
		if e, ok := epochStr[id]; ok {
			if e != epoch {
				t.Fatalf("%s epoch %d: %q, earlier %q", ch, id, epoch, e)
			}
			return
		}
		if other, ok := epochID[epoch]; ok {
			t.Fatalf("epoch %q names model epochs %d and %d", epoch, other, id)
		}
		epochStr[id], epochID[epoch] = epoch, id
		idsOf[ch] = append(idsOf[ch], id)
	}
	var want []Publication // deliveries the handler must have seen, in order
	for op := range ops {
		ch := names[rng.IntN(len(names))]
		r := rng.IntN(100)
		if r < 45 && strings.HasPrefix(ch, "q") && rng.IntN(50) > 0 {
			r = 50 + 30*rng.IntN(2) // a quiet channel: (un)subscribe or read instead
		}
		switch {
		case r < 45:
			data := fmt.Sprintf("%d:%s", op, strings.Repeat("x", rng.IntN(120)))
			key := ""
			if rng.IntN(4) == 0 {
				key = fmt.Sprint("k", rng.IntN(10))
			}
			res, err := m.Publish(ctx, ch, []byte(data), PublishOptions{IdempotencyKey: key})
			if err != nil {
				t.Fatal(err)
			}
			off, id, dup := ref.publish(ch, data, key)
			if res.Position.Offset != off || res.Duplicate != dup {
				t.Fatalf("op %d publish %s key %q: got %+v, model offset %d dup %v", op, ch, key, res, off, dup)
			}
			learn(ch, id, res.Position.Epoch)
			if !dup && ref.chans[ch].subs > 0 {
				want = append(want, Publication{Channel: ch, Offset: off, Epoch: res.Position.Epoch, Data: []byte(data)})
			}
		case r < 63 && (ref.subsOf(ch) == 0 || rng.IntN(4) == 0):
			subscribe(t, m, ch)
			ref.subscribe(ch)
		case r < 63:
			err := m.Unsubscribe(ctx, ch)
			if ok := ref.unsubscribe(ch); ok != (err == nil) || (!ok && !errors.Is(err, ErrNotSubscribed)) {
				t.Fatalf("op %d unsubscribe %s: %v, model ok %v", op, ch, err, ok)
			}
		case r < 68:
			d := rng.Int64N(int64(2 * time.Second))
			if rng.IntN(50) == 0 { // a quiet spell: the history expires
				d = int64(ttl)
			}
			clk.Add(time.Duration(d))
			m.sweep()
			ref.advance(d)
		default:
			// A since in any epoch seen so far (or a foreign one), mostly
			// near the top of the current life, where recovery succeeds
			// or just fails.
			c := ref.chans[ch]
			ids := append([]int{0, -1}, idsOf[ch]...)
			id := ids[rng.IntN(len(ids))]
			if c != nil && rng.IntN(4) > 0 {
				id = c.epoch
			}
			epoch, known := epochStr[id]
			if !known {
				epoch, id = "foreign", -1
			}
			var top uint64
			if c != nil && c.epoch == id {
				top = c.top
			}
			back := uint64(rng.IntN(2*size + 2))
			since := Position{Offset: top + uint64(rng.IntN(2)) - min(back, top), Epoch: epoch}
			if rng.IntN(8) == 0 {
				since.Offset = top + 1 + uint64(rng.IntN(3))
			}
			pubs, pos, err := m.History(ctx, ch, since)
			msgs, ok := ref.history(ch, since.Offset, id)
			if ok != (err == nil) || (!ok && !errors.Is(err, ErrUnrecoverable)) {
				t.Fatalf("op %d history %s since %+v (epoch %d): err %v, model ok %v", op, ch, since, id, err, ok)
			}
			if len(pubs) != len(msgs) {
				t.Fatalf("op %d history %s since %+v: %d publications, model %d", op, ch, since, len(pubs), len(msgs))
			}
			for i, p := range pubs {
				if p.Offset != msgs[i].off || string(p.Data) != msgs[i].data || p.Epoch != pos.Epoch || p.Channel != ch {
					t.Fatalf("op %d history %s [%d]: %+v, model %+v", op, ch, i, p, msgs[i])
				}
			}
			switch c := ref.chans[ch]; {
			case c != nil:
				learn(ch, c.epoch, pos.Epoch)
				if pos.Offset != c.top {
					t.Fatalf("op %d history %s: position %+v, model top %d", op, ch, pos, c.top)
				}
			case pos.Offset != 0:
				t.Fatalf("op %d history of %s without state: position %+v", op, ch, pos)
			case !ref.lost[ch]:
				learn(ch, 0, pos.Epoch)
			default:
				if _, ok := epochID[pos.Epoch]; ok {
					t.Fatalf("op %d history of lost %s without state: position %+v, an epoch in use", op, ch, pos)
				}
			}
		}
		st := m.Stats()
		var msgs int64
		for _, c := range ref.chans {
			msgs += int64(len(c.msgs))
		}
		if st.Channels != int64(len(ref.chans)) || st.Messages != msgs || st.HistoryBytes != ref.bytes {
			t.Fatalf("op %d: stats %+v, model channels %d messages %d bytes %d", op, st, len(ref.chans), msgs, ref.bytes)
		}
		if st.HistoryBytes > maxBytes {
			t.Fatalf("op %d: %d history bytes over the limit %d", op, st.HistoryBytes, maxBytes)
		}
	}
	for _, rule := range []string{"duplicate", "size trim", "max-bytes eviction", "ttl trim", "freed by sweep",
		"freed by unsubscribe", "history: other epoch or past the top", "history: at the top",
		"history: trimmed", "history: recovered", "history: no state, zero epoch", "subscribed without state"} {
		if ref.seen[rule] == 0 && ops >= 20000 {
			t.Errorf("rule %q never exercised in %d operations: the test proves nothing about it", rule, ops)
		}
	}
	t.Logf("history size %d, max bytes %d: %v", size, maxBytes, ref.seen)
	got := slices.Concat(func() [][]Publication {
		var all [][]Publication
		for _, n := range names {
			all = append(all, rec.got(n))
		}
		return all
	}()...)
	var wantSorted []Publication
	for _, n := range names {
		for _, p := range want {
			if p.Channel == n {
				wantSorted = append(wantSorted, p)
			}
		}
	}
	if len(got) != len(wantSorted) {
		t.Fatalf("handler got %d publications, model %d", len(got), len(wantSorted))
	}
	for i := range got {
		g, w := got[i], wantSorted[i]
		if g.Channel != w.Channel || g.Offset != w.Offset || g.Epoch != w.Epoch || string(g.Data) != string(w.Data) {
			t.Fatalf("delivery %d: %+v, model %+v", i, g, w)
		}
	}
}

package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	pubs   map[string][]Publication
	bcasts [][]byte
	discs  []Disconnect
	// inFlight detects concurrent HandlePublication calls for one channel.
	inFlight sync.Map // channel → *atomic.Int32
	overlap  atomic.Int32
}

func newRecorder() *recorder { return &recorder{pubs: map[string][]Publication{}} }

func (r *recorder) HandlePublication(p Publication) {
	v, ok := r.inFlight.Load(p.Channel)
	if !ok {
		v, _ = r.inFlight.LoadOrStore(p.Channel, new(atomic.Int32))
	}
	n := v.(*atomic.Int32)
	if n.Add(1) != 1 {
		r.overlap.Add(1)
	}
	runtime.Gosched() // widen the window an overlap would need
	r.mu.Lock()
	r.pubs[p.Channel] = append(r.pubs[p.Channel], p)
	r.mu.Unlock()
	n.Add(-1)
}

func (r *recorder) HandleBroadcast(data []byte) {
	r.mu.Lock()
	r.bcasts = append(r.bcasts, data)
	r.mu.Unlock()
}

func (r *recorder) HandleDisconnect(d Disconnect) {
	r.mu.Lock()
	r.discs = append(r.discs, d)
	r.mu.Unlock()
}

func (r *recorder) got(ch string) []Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Publication(nil), r.pubs[ch]...)
}

// clock is a settable Now for the TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var ctx = context.Background()

// start returns a started Memory (closed at cleanup, checking that no
// goroutine is left) and its recorder.
func start(t testing.TB, cfg MemoryConfig) (*Memory, *recorder) {
	t.Helper()
	m, err := NewMemory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	if err := m.Start(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, r
}

func publish(t testing.TB, m *Memory, ch, data string) Position {
	t.Helper()
	res, err := m.Publish(ctx, ch, []byte(data), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Position
}

func subscribe(t testing.TB, m *Memory, ch string) {
	t.Helper()
	if err := m.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
}

func history(t testing.TB, m *Memory, ch string, since Position) ([]Publication, Position, error) {
	t.Helper()
	return m.History(ctx, ch, since)
}

// offsets returns the offsets of pubs, for compact failure messages.
func offsets(pubs []Publication) []uint64 {
	o := make([]uint64, len(pubs))
	for i, p := range pubs {
		o[i] = p.Offset
	}
	return o
}

func TestPublishOffsetsAndDelivery(t *testing.T) {
	m, r := start(t, MemoryConfig{})
	subscribe(t, m, "news")
	var epoch string
	for i := 1; i <= 3; i++ {
		p := publish(t, m, "news", fmt.Sprintf(`{"n":%d}`, i))
		if p.Offset != uint64(i) {
			t.Fatalf("publish %d: offset %d", i, p.Offset)
		}
		if i == 1 {
			epoch = p.Epoch
		} else if p.Epoch != epoch {
			t.Fatalf("epoch changed within a channel's life: %q then %q", epoch, p.Epoch)
		}
	}
	got := r.got("news")
	if len(got) != 3 {
		t.Fatalf("handler got %d publications, want 3", len(got))
	}
	for i, p := range got {
		if p.Offset != uint64(i+1) || p.Epoch != epoch || p.Channel != "news" || string(p.Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("delivery %d = %+v", i, p)
		}
	}
	// Another channel counts on its own.
	if p := publish(t, m, "other", "1"); p.Offset != 1 {
		t.Fatalf("other channel's first offset %d", p.Offset)
	}
	if pos, err := m.Position(ctx, "news"); err != nil || pos.Offset != 3 || pos.Epoch != epoch {
		t.Fatalf("Position = %+v, %v", pos, err)
	}
}

func TestPublishOnlyDeliveredWhenSubscribed(t *testing.T) {
	m, r := start(t, MemoryConfig{})
	publish(t, m, "news", "1")
	subscribe(t, m, "news")
	publish(t, m, "news", "2")
	if err := m.Unsubscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	publish(t, m, "news", "3")
	if got := offsets(r.got("news")); len(got) != 1 || got[0] != 2 {
		t.Fatalf("delivered offsets %v, want [2] (only while subscribed)", got)
	}
	// History kept all three regardless.
	pubs, pos, err := history(t, m, "news", Position{Offset: 0, Epoch: publishEpoch(t, m, "news")})
	if err != nil || len(pubs) != 3 || pos.Offset != 3 {
		t.Fatalf("History = %v, %+v, %v", offsets(pubs), pos, err)
	}
}

func publishEpoch(t testing.TB, m *Memory, ch string) string {
	t.Helper()
	p, err := m.Position(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	return p.Epoch
}

func TestSubscribeIsCounted(t *testing.T) {
	m, r := start(t, MemoryConfig{})
	subscribe(t, m, "c")
	subscribe(t, m, "c")
	if err := m.Unsubscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	publish(t, m, "c", "1")
	if len(r.got("c")) != 1 {
		t.Fatal("one Unsubscribe of two Subscribes stopped delivery")
	}
	if err := m.Unsubscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unsubscribe(ctx, "c"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("third Unsubscribe: %v, want ErrNotSubscribed", err)
	}
	if err := m.Unsubscribe(ctx, "never"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Unsubscribe of an unknown channel: %v, want ErrNotSubscribed", err)
	}
}

func TestDataIsCopied(t *testing.T) {
	m, r := start(t, MemoryConfig{})
	subscribe(t, m, "c")
	buf := []byte(`"first"`)
	publish0, err := m.Publish(ctx, "c", buf, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, `"XXXXX"`)
	pubs, _, err := history(t, m, "c", Position{Epoch: publish0.Position.Epoch})
	if err != nil || string(pubs[0].Data) != `"first"` {
		t.Fatalf("history data %q, %v: the caller's buffer was kept", pubs[0].Data, err)
	}
	if d := r.got("c")[0].Data; string(d) != `"first"` {
		t.Fatalf("delivered data %q: the caller's buffer was kept", d)
	}
	b := []byte(`"b"`)
	if err := m.Broadcast(ctx, b); err != nil {
		t.Fatal(err)
	}
	copy(b, `"X"`)
	if string(r.bcasts[0]) != `"b"` {
		t.Fatalf("broadcast data %q: the caller's buffer was kept", r.bcasts[0])
	}
}

func TestConcurrentPublishersOffsetsExactAndOrdered(t *testing.T) {
	m, r := start(t, MemoryConfig{HistorySize: 10000})
	const pubs, each = 8, 300
	chans := []string{"a", "b", "c"}
	for _, c := range chans {
		subscribe(t, m, c)
	}
	var wg sync.WaitGroup
	results := make([][]uint64, pubs*len(chans))
	for i := range pubs {
		for j, c := range chans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					res, err := m.Publish(ctx, c, []byte(`1`), PublishOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					results[i*len(chans)+j] = append(results[i*len(chans)+j], res.Position.Offset)
				}
			}()
		}
	}
	wg.Wait()
	if n := r.overlap.Load(); n != 0 {
		t.Fatalf("HandlePublication ran concurrently for one channel %d times", n)
	}
	for j, c := range chans {
		seen := make(map[uint64]bool)
		for i := range pubs {
			last := uint64(0)
			for _, o := range results[i*len(chans)+j] {
				if o <= last {
					t.Fatalf("%s: one publisher's offsets not increasing: %d after %d", c, o, last)
				}
				if seen[o] {
					t.Fatalf("%s: offset %d given twice", c, o)
				}
				seen[o], last = true, o
			}
		}
		for o := uint64(1); o <= pubs*each; o++ {
			if !seen[o] {
				t.Fatalf("%s: offset %d never given (gap)", c, o)
			}
		}
		got := r.got(c)
		if len(got) != pubs*each {
			t.Fatalf("%s: %d deliveries, want %d", c, len(got), pubs*each)
		}
		for i, p := range got {
			if p.Offset != uint64(i+1) {
				t.Fatalf("%s: delivery %d has offset %d: delivery order is not offset order", c, i, p.Offset)
			}
		}
	}
}

func TestHistorySizeTrim(t *testing.T) {
	m, _ := start(t, MemoryConfig{HistorySize: 3})
	var ep string
	for i := 1; i <= 5; i++ {
		ep = publish(t, m, "c", fmt.Sprint(i)).Epoch
	}
	pubs, pos, err := history(t, m, "c", Position{Offset: 2, Epoch: ep})
	if err != nil || fmt.Sprint(offsets(pubs)) != "[3 4 5]" || pos.Offset != 5 {
		t.Fatalf("since 2: %v %+v %v, want [3 4 5]", offsets(pubs), pos, err)
	}
	if string(pubs[0].Data) != "3" || string(pubs[2].Data) != "5" {
		t.Fatalf("data %q..%q", pubs[0].Data, pubs[2].Data)
	}
	pubs, pos, err = history(t, m, "c", Position{Offset: 1, Epoch: ep})
	if !errors.Is(err, ErrUnrecoverable) || pubs != nil || pos.Offset != 5 || pos.Epoch != ep {
		t.Fatalf("since 1 (offset 2 trimmed): %v %+v %v, want ErrUnrecoverable, none, position 5", offsets(pubs), pos, err)
	}
	if st := m.Stats(); st.Messages != 3 {
		t.Fatalf("Stats.Messages %d, want 3", st.Messages)
	}
}

func TestHistoryAllOrNothing(t *testing.T) {
	m, _ := start(t, MemoryConfig{})
	for i := 1; i <= 4; i++ {
		publish(t, m, "c", "x")
	}
	ep := publishEpoch(t, m, "c")
	cases := []struct {
		name  string
		since Position
		want  string // offsets, or "unrecoverable"
	}{
		{"from zero", Position{0, ep}, "[1 2 3 4]"},
		{"middle", Position{2, ep}, "[3 4]"},
		{"at the top", Position{4, ep}, "[]"},
		{"past the top", Position{5, ep}, "unrecoverable"},
		{"far past the top", Position{1 << 62, ep}, "unrecoverable"},
		{"other epoch", Position{2, "nope"}, "unrecoverable"},
		{"empty epoch", Position{0, ""}, "unrecoverable"},
		{"huge epoch", Position{0, strings.Repeat("e", 1<<20)}, "unrecoverable"},
	}
	for _, tc := range cases {
		pubs, pos, err := history(t, m, "c", tc.since)
		got := fmt.Sprint(offsets(pubs))
		if errors.Is(err, ErrUnrecoverable) {
			if pubs != nil {
				t.Errorf("%s: ErrUnrecoverable with %d publications: partial", tc.name, len(pubs))
			}
			got = "unrecoverable"
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
		if pos != (Position{4, ep}) {
			t.Errorf("%s: position %+v, want {4 %s}", tc.name, pos, ep)
		}
	}
	// A channel never used: its position is (0, the zero epoch, which c
	// also has in its first life); only that position is recoverable.
	if pubs, pos, err := history(t, m, "unknown", Position{0, ep}); err != nil || pubs != nil || pos != (Position{0, ep}) {
		t.Fatalf("unknown channel since (0, zero epoch): %v, %+v, %v", pubs, pos, err)
	}
	for _, since := range []Position{{1, ep}, {0, "other"}} {
		if _, pos, err := history(t, m, "unknown", since); !errors.Is(err, ErrUnrecoverable) || pos != (Position{0, ep}) {
			t.Fatalf("unknown channel since %+v: %+v, %v", since, pos, err)
		}
	}
}

func TestHistoryTTL(t *testing.T) {
	clk := newClock()
	m, _ := start(t, MemoryConfig{HistoryTTL: time.Minute, Now: clk.Now})
	ep := publish(t, m, "c", "1").Epoch
	clk.Add(30 * time.Second)
	publish(t, m, "c", "2")
	clk.Add(29 * time.Second) // message 1 is 59s old
	if pubs, _, err := history(t, m, "c", Position{0, ep}); err != nil || len(pubs) != 2 {
		t.Fatalf("before the TTL: %v, %v", offsets(pubs), err)
	}
	clk.Add(time.Second) // message 1 is 60s old: gone
	if pubs, _, err := history(t, m, "c", Position{0, ep}); !errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("since 0 after message 1 expired: %v, %v; want ErrUnrecoverable", offsets(pubs), err)
	}
	if pubs, _, err := history(t, m, "c", Position{1, ep}); err != nil || fmt.Sprint(offsets(pubs)) != "[2]" {
		t.Fatalf("since 1: %v, %v; want [2]", offsets(pubs), err)
	}
	clk.Add(30 * time.Second)
	if pubs, pos, err := history(t, m, "c", Position{1, ep}); !errors.Is(err, ErrUnrecoverable) || pos.Offset != 2 {
		t.Fatalf("since 1 after all expired: %v, %+v, %v", offsets(pubs), pos, err)
	}
	if pubs, _, err := history(t, m, "c", Position{2, ep}); err != nil || len(pubs) != 0 {
		t.Fatalf("since the top after all expired: %v, %v; want none, nil", offsets(pubs), err)
	}
	if st := m.Stats(); st.Messages != 0 || st.HistoryBytes != 0 {
		t.Fatalf("Stats after expiry: %+v", st)
	}
}

func TestHistoryMaxBytesEvictsGlobalOldestFirst(t *testing.T) {
	const payload = 100
	per := int64(payload + entryOverhead)
	m, _ := start(t, MemoryConfig{HistoryMaxBytes: 10 * per})
	data := strings.Repeat("x", payload)
	// Ten messages over many channels, in a known global order.
	var order []string
	for i := range 10 {
		ch := fmt.Sprintf("ch%d", i%4)
		publish(t, m, ch, data)
		order = append(order, ch)
	}
	if st := m.Stats(); st.HistoryBytes != 10*per || st.Messages != 10 {
		t.Fatalf("at the limit: %+v", st)
	}
	// Three more evict the three globally oldest: ch0#1, ch1#1, ch2#1.
	for range 3 {
		publish(t, m, "ch9", data)
	}
	if st := m.Stats(); st.HistoryBytes != 10*per || st.Messages != 10 {
		t.Fatalf("after eviction: %+v, want 10 messages, %d bytes", st, 10*per)
	}
	for i := range 4 {
		ch := fmt.Sprintf("ch%d", i)
		ep := publishEpoch(t, m, ch)
		_, _, err := history(t, m, ch, Position{0, ep})
		evicted := i < 3
		if evicted != errors.Is(err, ErrUnrecoverable) {
			t.Errorf("%s since 0: err %v, want evicted=%v", ch, err, evicted)
		}
		// Their later messages are still there.
		if pubs, _, err := history(t, m, ch, Position{1, ep}); err != nil || len(pubs) != 2-boolInt(i == 3 || i == 2) {
			t.Errorf("%s since 1: %v, %v", ch, offsets(pubs), err)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestIdempotency(t *testing.T) {
	clk := newClock()
	m, r := start(t, MemoryConfig{HistoryTTL: time.Minute, Now: clk.Now})
	subscribe(t, m, "c")
	opts := PublishOptions{IdempotencyKey: "k1"}
	first, err := m.Publish(ctx, "c", []byte(`"a"`), opts)
	if err != nil || first.Duplicate || first.Position.Offset != 1 {
		t.Fatalf("first: %+v, %v", first, err)
	}
	clk.Add(59 * time.Second)
	again, err := m.Publish(ctx, "c", []byte(`"different body"`), opts)
	if err != nil || !again.Duplicate || again.Position != first.Position {
		t.Fatalf("retry within the TTL: %+v, %v; want the first result, Duplicate", again, err)
	}
	if n := len(r.got("c")); n != 1 {
		t.Fatalf("the retry was delivered: %d deliveries", n)
	}
	// The same key on another channel is another key.
	if o, err := m.Publish(ctx, "d", []byte(`1`), opts); err != nil || o.Duplicate {
		t.Fatalf("same key, other channel: %+v, %v", o, err)
	}
	clk.Add(time.Second)
	late, err := m.Publish(ctx, "c", []byte(`"b"`), opts)
	if err != nil || late.Duplicate || late.Position.Offset != 2 {
		t.Fatalf("after the TTL: %+v, %v; want a new publish at offset 2", late, err)
	}
	if _, err := m.Publish(ctx, "c", nil, PublishOptions{IdempotencyKey: strings.Repeat("k", 65)}); !errors.Is(err, ErrIdempotencyKeyTooLong) {
		t.Fatalf("65-byte key: %v", err)
	}
	if _, err := m.Publish(ctx, "c", nil, PublishOptions{IdempotencyKey: strings.Repeat("k", 64)}); err != nil {
		t.Fatalf("64-byte key: %v", err)
	}
	if pos, _ := m.Position(ctx, "c"); pos.Offset != 3 {
		t.Fatalf("offset %d after a refused key and an accepted one, want 3", pos.Offset)
	}
}

func TestIdempotencyKeyCap(t *testing.T) {
	clk := newClock()
	m, _ := start(t, MemoryConfig{HistoryTTL: time.Minute, IdempotencyMaxKeys: 2, Now: clk.Now})
	for _, k := range []string{"a", "b"} {
		if _, err := m.Publish(ctx, "c", nil, PublishOptions{IdempotencyKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Publish(ctx, "x", nil, PublishOptions{IdempotencyKey: "c"}); !errors.Is(err, ErrTooManyIdempotencyKeys) {
		t.Fatalf("third key: %v, want ErrTooManyIdempotencyKeys", err)
	}
	if pos, _ := m.Position(ctx, "x"); pos.Offset != 0 {
		t.Fatalf("a refused publish published: offset %d", pos.Offset)
	}
	if res, err := m.Publish(ctx, "c", nil, PublishOptions{IdempotencyKey: "a"}); err != nil || !res.Duplicate {
		t.Fatalf("a remembered key at the cap: %+v, %v", res, err)
	}
	if _, err := m.Publish(ctx, "c", nil, PublishOptions{}); err != nil {
		t.Fatalf("a publish without key at the cap: %v", err)
	}
	clk.Add(time.Minute)
	m.sweep()
	if st := m.Stats(); st.IdempotencyKeys != 0 {
		t.Fatalf("keys after the TTL and a sweep: %d", st.IdempotencyKeys)
	}
	if _, err := m.Publish(ctx, "x", nil, PublishOptions{IdempotencyKey: "c"}); err != nil {
		t.Fatalf("a key after the others expired: %v", err)
	}
}

func TestChannelFreedAndEpochChanges(t *testing.T) {
	clk := newClock()
	m, _ := start(t, MemoryConfig{HistoryTTL: time.Minute, Now: clk.Now})
	subscribe(t, m, "sub")
	first := publish(t, m, "c", "1")
	publish(t, m, "sub", "1")
	if st := m.Stats(); st.Channels != 2 {
		t.Fatalf("channels %d, want 2", st.Channels)
	}
	clk.Add(time.Minute)
	m.sweep()
	if st := m.Stats(); st.Channels != 1 || st.Messages != 0 || st.HistoryBytes != 0 {
		t.Fatalf("after the TTL: %+v; want only the subscribed channel left", st)
	}
	if err := m.Unsubscribe(ctx, "sub"); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Channels != 0 {
		t.Fatalf("after the last Unsubscribe of an empty channel: %d channels, want 0", st.Channels)
	}
	again := publish(t, m, "c", "1")
	if again.Offset != 1 || again.Epoch == first.Epoch {
		t.Fatalf("recreated channel: %+v, first life %+v; want offset 1 and a new epoch", again, first)
	}
	if _, _, err := history(t, m, "c", Position{0, first.Epoch}); !errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("old position on the new stream: %v, want ErrUnrecoverable", err)
	}
	// Another instance (a restart) has other epochs.
	m2, _ := start(t, MemoryConfig{})
	if p := publish(t, m2, "c", "1"); p.Epoch == again.Epoch || p.Epoch == first.Epoch {
		t.Fatalf("a second Memory reused epoch %q", p.Epoch)
	}
}

func TestSweepRunsInBackground(t *testing.T) {
	m, _ := start(t, MemoryConfig{HistoryTTL: 20 * time.Millisecond, SweepInterval: 5 * time.Millisecond})
	publish(t, m, "c", "1")
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Channels != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("channel not freed by the background sweep: %+v", m.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadInputs(t *testing.T) {
	for _, cfg := range []MemoryConfig{{HistorySize: -1}, {HistoryTTL: -1}, {HistoryMaxBytes: -1}, {IdempotencyMaxKeys: -1}, {SweepInterval: -1}} {
		if _, err := NewMemory(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewMemory(%+v): %v, want ErrBadConfig", cfg, err)
		}
	}
	m, err := NewMemory(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(ctx, "c", nil, PublishOptions{}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Publish before Start: %v", err)
	}
	for name, err := range map[string]error{
		"Subscribe": m.Subscribe(ctx, "c"),
		"Broadcast": m.Broadcast(ctx, nil),
	} {
		if !errors.Is(err, ErrNotStarted) {
			t.Errorf("%s before Start: %v", name, err)
		}
	}
	if err := m.Start(nil); !errors.Is(err, ErrNilHandler) {
		t.Errorf("Start(nil): %v", err)
	}
	r := newRecorder()
	if err := m.Start(r); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(r); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if _, err := m.Publish(ctx, "", nil, PublishOptions{}); !errors.Is(err, ErrEmptyChannel) {
		t.Errorf("empty channel: %v", err)
	}
	for _, d := range []Disconnect{{}, {User: "u", Conn: "c"}} {
		if err := m.Disconnect(ctx, d); !errors.Is(err, ErrBadDisconnect) {
			t.Errorf("Disconnect(%+v): %v", d, err)
		}
	}
	if err := m.Disconnect(ctx, Disconnect{User: "maggie"}); err != nil || len(r.discs) != 1 || r.discs[0].User != "maggie" {
		t.Errorf("Disconnect: %v, %+v", err, r.discs)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Publish(done, "c", nil, PublishOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a done context: %v", err)
	}
	if p, _ := m.Position(ctx, "c"); p.Offset != 0 {
		t.Errorf("a refused publish published")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(ctx, "c", nil, PublishOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		m, err := NewMemory(MemoryConfig{SweepInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(newRecorder()); err != nil {
			t.Fatal(err)
		}
		publish(t, m, "c", "1")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after Close", before, runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestIdempotencyUnderConcurrentRetries(t *testing.T) {
	m, r := start(t, MemoryConfig{})
	subscribe(t, m, "c")
	const n = 16
	var wg sync.WaitGroup
	results := make([]PublishResult, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Publish(ctx, "c", []byte(fmt.Sprint(i)), PublishOptions{IdempotencyKey: "same"})
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	firsts := 0
	for _, res := range results {
		if !res.Duplicate {
			firsts++
		}
		if res.Position != results[0].Position {
			t.Fatalf("results disagree: %+v and %+v", res.Position, results[0].Position)
		}
	}
	if firsts != 1 || len(r.got("c")) != 1 || results[0].Position.Offset != 1 {
		t.Fatalf("%d non-duplicates, %d deliveries, offset %d; want exactly one publish", firsts, len(r.got("c")), results[0].Position.Offset)
	}
}

// A channel freed without ever having had a message lost nothing: its next
// life keeps the epoch, so a client of a quiet channel (an empty personal
// channel) recovers after a reconnect instead of being told to reload. A
// channel freed with messages gets a new epoch in every later life.
func TestEpochOfQuietAndLostChannels(t *testing.T) {
	clk := newClock()
	m, _ := start(t, MemoryConfig{HistoryTTL: time.Minute, Now: clk.Now})
	subscribe(t, m, "#maggie")
	quiet := publishEpoch(t, m, "#maggie")
	if err := m.Unsubscribe(ctx, "#maggie"); err != nil {
		t.Fatal(err)
	}
	if n := m.Stats().Channels; n != 0 {
		t.Fatalf("%d channels after the last unsubscribe of a quiet channel", n)
	}
	if pubs, pos, err := history(t, m, "#maggie", Position{0, quiet}); err != nil || len(pubs) != 0 || pos != (Position{0, quiet}) {
		t.Fatalf("quiet channel without state, since (0, its epoch): %v, %+v, %v; want recovered", pubs, pos, err)
	}
	subscribe(t, m, "#maggie")
	if p := publishEpoch(t, m, "#maggie"); p != quiet {
		t.Fatalf("quiet channel reborn with epoch %q, was %q", p, quiet)
	}
	first := publish(t, m, "#maggie", "1")
	if first.Epoch != quiet || first.Offset != 1 {
		t.Fatalf("first message %+v", first)
	}
	// A client that saw (0, quiet) before the message recovers it.
	if pubs, _, err := history(t, m, "#maggie", Position{0, quiet}); err != nil || len(pubs) != 1 {
		t.Fatalf("since (0, quiet) with one message: %v, %v", offsets(pubs), err)
	}
	// Now lose it: unsubscribed, expired, swept.
	if err := m.Unsubscribe(ctx, "#maggie"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	m.sweep()
	if n := m.Stats().Channels; n != 0 {
		t.Fatalf("%d channels after the history expired", n)
	}
	for _, since := range []Position{{0, quiet}, {1, quiet}} {
		if _, pos, err := history(t, m, "#maggie", since); !errors.Is(err, ErrUnrecoverable) || pos.Epoch == quiet {
			t.Fatalf("lost channel since %+v: %+v, %v; want ErrUnrecoverable and another epoch", since, pos, err)
		}
	}
	second := publish(t, m, "#maggie", "again")
	if second.Offset != 1 || second.Epoch == quiet {
		t.Fatalf("reborn after a loss: %+v; want offset 1 and a new epoch", second)
	}
	if _, _, err := history(t, m, "#maggie", Position{0, quiet}); !errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("old (0, quiet) on the new life: %v; the message of the lost life would be skipped", err)
	}
	// Each later life is unique too.
	if err := m.Subscribe(ctx, "#maggie"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unsubscribe(ctx, "#maggie"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	m.sweep()
	if third := publish(t, m, "#maggie", "3"); third.Epoch == second.Epoch || third.Epoch == quiet {
		t.Fatalf("third life epoch %q reuses an earlier one", third.Epoch)
	}
}

func TestLostFilter(t *testing.T) {
	f := newLostFilter()
	for i := range 20000 {
		f.add(fmt.Sprint("lost:", i))
	}
	for i := range 20000 {
		if !f.has(fmt.Sprint("lost:", i)) {
			t.Fatalf("lost:%d added but not found: a false negative would reuse an epoch", i)
		}
	}
	fp := 0
	for i := range 20000 {
		if f.has(fmt.Sprint("other:", i)) {
			fp++
		}
	}
	if fp > 20 { // expected about 0.00002%; 0.1% would mean a broken hash
		t.Fatalf("%d false positives in 20000", fp)
	}
}

// Once Close returns no Handler method runs or starts, however many
// publishers are in flight.
func TestCloseStopsDelivery(t *testing.T) {
	m, err := NewMemory(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := &nopHandler{}
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		subscribe(t, m, fmt.Sprint("c", i))
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := m.Publish(ctx, fmt.Sprint("c", i), []byte("1"), PublishOptions{}); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				if err := m.Broadcast(ctx, []byte("1")); err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
				}
			}
		}()
	}
	for h.n.Load() < 100 {
		runtime.Gosched()
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	after := h.n.Load()
	wg.Wait()
	if n := h.n.Load(); n != after {
		t.Fatalf("%d publications delivered after Close returned", n-after)
	}
}

// TestSubscriptionWithoutState: subscribing a channel that never had a
// message creates no state, yet its first publish is delivered and later
// ones too until the last Unsubscribe; counts survive the state's
// creation. A lost name's subscription keeps a state, so that the unique
// epoch its subscribers were told stays the same.
func TestSubscriptionWithoutState(t *testing.T) {
	clk := newClock()
	m, rec := start(t, MemoryConfig{HistoryTTL: time.Minute, Now: clk.Now})
	subscribe(t, m, "#u")
	subscribe(t, m, "#u")
	if n := m.Stats().Channels; n != 0 {
		t.Fatalf("%d channel states after subscribing a channel without messages, want 0", n)
	}
	publish(t, m, "#u", "1")
	if err := m.Unsubscribe(ctx, "#u"); err != nil {
		t.Fatal(err)
	}
	publish(t, m, "#u", "2") // one subscription left: still delivered
	if err := m.Unsubscribe(ctx, "#u"); err != nil {
		t.Fatal(err)
	}
	publish(t, m, "#u", "3") // none left
	if got := offsets(rec.got("#u")); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("delivered offsets %v, want [1 2]", got)
	}
	if err := m.Unsubscribe(ctx, "#u"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("a third Unsubscribe: %v, want ErrNotSubscribed", err)
	}
	if err := m.Unsubscribe(ctx, "#never"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Unsubscribe of a channel never subscribed: %v, want ErrNotSubscribed", err)
	}

	// Lose "#u" (its history expires while nobody holds it), then subscribe:
	// the unique epoch of its next life must not change between reads.
	clk.Add(time.Minute)
	m.sweep()
	subscribe(t, m, "#u")
	if n := m.Stats().Channels; n != 1 {
		t.Fatalf("%d channel states after subscribing a lost name, want 1", n)
	}
	e1, e2 := publishEpoch(t, m, "#u"), publishEpoch(t, m, "#u")
	if e1 != e2 {
		t.Fatalf("a subscribed lost channel changed its epoch between reads: %q, %q", e1, e2)
	}
	if p := publish(t, m, "#u", "4"); p.Epoch != e1 || p.Offset != 1 {
		t.Fatalf("publish to the subscribed lost channel: %+v, want offset 1 in epoch %q", p, e1)
	}
}

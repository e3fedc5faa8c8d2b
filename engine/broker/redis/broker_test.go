package redis

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// recorder is a Handler that keeps what it got.
type recorder struct {
	mu     sync.Mutex
	pubs   []broker.Publication
	bcasts []string
	discs  []broker.Disconnect
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}
func (r *recorder) HandlePublication(p broker.Publication) {
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.mu.Unlock()
	r.poke()
}
func (r *recorder) HandleBroadcast(d []byte) {
	r.mu.Lock()
	r.bcasts = append(r.bcasts, string(d))
	r.mu.Unlock()
	r.poke()
}
func (r *recorder) HandleDisconnect(d broker.Disconnect) {
	r.mu.Lock()
	r.discs = append(r.discs, d)
	r.mu.Unlock()
	r.poke()
}

// waitFor polls cond under the lock until it holds or 5 s pass.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) channel(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Publication
	for _, p := range r.pubs {
		if p.Channel == ch {
			out = append(out, p)
		}
	}
	return out
}

func newClient(t testing.TB, addr string) []rueidis.Client {
	t.Helper()
	return []rueidis.Client{redistest.Client(t, addr)}
}

func newNode(t *testing.T, addr string, mod func(*Config)) (*Broker, *recorder) {
	t.Helper()
	cs := newClient(t, addr)
	cfg := Config{Shards: cs, Timeout: time.Second, CanaryInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	return startBroker(t, cfg)
}

// startBroker makes and starts a Broker for cfg, delivering to a
// recorder, closed when the test ends.
func startBroker(t *testing.T, cfg Config) (*Broker, *recorder) {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, r
}

var ctx = context.Background()

// assertSequence checks offsets 1..n, in order, with one epoch.
func assertSequence(t *testing.T, pubs []broker.Publication, from, n int) {
	t.Helper()
	if len(pubs) != n {
		t.Fatalf("%d publications, want %d", len(pubs), n)
	}
	for i, p := range pubs {
		if p.Offset != uint64(from+i) || p.Epoch != pubs[0].Epoch {
			t.Fatalf("publication %d: offset %d epoch %q, want offset %d epoch %q", i, p.Offset, p.Epoch, from+i, pubs[0].Epoch)
		}
	}
}

func TestCrossNodeDeliveryInOffsetOrder(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	c, rc := newNode(t, srv.Addr, nil)
	for _, n := range []*Broker{b, c} {
		if err := n.Subscribe(ctx, "news"); err != nil {
			t.Fatal(err)
		}
	}
	// No pause after Subscribe: it returned once the subscription was
	// confirmed, so the very first publish must arrive.
	const n = 200
	for i := range n {
		pub := a
		if i%2 == 1 {
			pub = b // offsets are shared: publishes from two nodes interleave
		}
		res, err := pub.Publish(ctx, "news", []byte(`{"i":`+strconv.Itoa(i)+`}`), broker.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Position.Offset != uint64(i+1) {
			t.Fatalf("publish %d got offset %d", i, res.Position.Offset)
		}
	}
	for _, r := range []*recorder{rb, rc} {
		r.waitFor(t, "200 publications", func() bool { return len(r.pubs) >= n })
		pubs := r.channel("news")
		assertSequence(t, pubs, 1, n)
		for i, p := range pubs {
			if string(p.Data) != `{"i":`+strconv.Itoa(i)+`}` {
				t.Fatalf("publication %d data %s", i, p.Data)
			}
		}
	}
	// A node without subscribers gets nothing; after Unsubscribe neither.
	if err := c.Unsubscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "news", []byte(`"after"`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "201st publication", func() bool { return len(rb.pubs) == n+1 })
	time.Sleep(100 * time.Millisecond)
	if got := len(rc.channel("news")); got != n {
		t.Fatalf("unsubscribed node got %d publications, want %d", got, n)
	}
}

func TestHistoryFromAnotherNode(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, func(c *Config) { c.HistorySize = 5 })
	b, _ := newNode(t, srv.Addr, func(c *Config) { c.HistorySize = 5 })
	empty, err := b.Position(ctx, "h")
	if err != nil || empty.Offset != 0 || empty.Epoch == "" {
		t.Fatalf("Position of a new channel = %+v, %v", empty, err)
	}
	for i := range 8 {
		res, err := a.Publish(ctx, "h", []byte(strconv.Itoa(i+1)), broker.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Position.Epoch != empty.Epoch {
			t.Fatalf("epoch changed from %q to %q without a loss", empty.Epoch, res.Position.Epoch)
		}
	}
	pos, err := b.Position(ctx, "h")
	if err != nil || pos.Offset != 8 {
		t.Fatalf("Position = %+v, %v", pos, err)
	}
	pubs, top, err := b.History(ctx, "h", broker.Position{Offset: 5, Epoch: pos.Epoch})
	if err != nil || top != pos {
		t.Fatalf("History = %v, %+v, %v", pubs, top, err)
	}
	assertSequence(t, pubs, 6, 3)
	if string(pubs[0].Data) != "6" {
		t.Fatalf("data %s", pubs[0].Data)
	}
	if pubs, _, err := b.History(ctx, "h", pos); err != nil || len(pubs) != 0 {
		t.Fatalf("History at the top = %v, %v; want none, nil", pubs, err)
	}
	for name, since := range map[string]broker.Position{
		"trimmed":     {Offset: 2, Epoch: pos.Epoch}, // 3..8 missing, only 4..8 kept
		"other epoch": {Offset: 5, Epoch: "nope"},
		"past top":    {Offset: 9, Epoch: pos.Epoch},
	} {
		pubs, top, err := b.History(ctx, "h", since)
		if !errors.Is(err, broker.ErrUnrecoverable) || len(pubs) != 0 || top != pos {
			t.Errorf("%s: History = %d pubs, %+v, %v; want none, %+v, ErrUnrecoverable", name, len(pubs), top, err, pos)
		}
	}
}

func TestEpochChangesWhenRedisIsFlushed(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	before, err := a.Publish(ctx, "e", []byte(`1`), broker.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	after, err := a.Publish(ctx, "e", []byte(`2`), broker.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Position.Offset != 1 || after.Position.Epoch == before.Position.Epoch {
		t.Fatalf("after FLUSHALL: %+v, before %+v; want offset 1 and a new epoch", after.Position, before.Position)
	}
	if _, _, err := a.History(ctx, "e", before.Position); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("History from the lost epoch: %v, want ErrUnrecoverable", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	if err := b.Subscribe(ctx, "i"); err != nil {
		t.Fatal(err)
	}
	first, err := a.Publish(ctx, "i", []byte(`1`), broker.PublishOptions{IdempotencyKey: "k"})
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := b.Publish(ctx, "i", []byte(`"other body"`), broker.PublishOptions{IdempotencyKey: "k"})
	if err != nil || !again.Duplicate || again.Position != first.Position {
		t.Fatalf("retry: %+v, %v; want duplicate of %+v", again, err, first.Position)
	}
	other, err := a.Publish(ctx, "i", []byte(`2`), broker.PublishOptions{IdempotencyKey: "k2"})
	if err != nil || other.Duplicate || other.Position.Offset != 2 {
		t.Fatalf("another key: %+v, %v", other, err)
	}
	rb.waitFor(t, "two publications", func() bool { return len(rb.pubs) >= 2 })
	time.Sleep(100 * time.Millisecond)
	assertSequence(t, rb.channel("i"), 1, 2)
}

func TestBroadcastAndDisconnectReachEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	a, ra := newNode(t, srv.Addr, nil)
	_, rb := newNode(t, srv.Addr, nil)
	if err := a.Broadcast(ctx, []byte(`{"hello":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Disconnect(ctx, broker.Disconnect{User: "maggie"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Disconnect(ctx, broker.Disconnect{Conn: "0.1"}); err != nil {
		t.Fatal(err)
	}
	// The node that asks names itself, so that it can ignore its own
	// delivery; the user's name may hold anything, a newline too.
	if err := a.Disconnect(ctx, broker.Disconnect{User: "bob\nx", Origin: "n1"}); err != nil {
		t.Fatal(err)
	}
	want := []broker.Disconnect{{User: "maggie"}, {Conn: "0.1"}, {User: "bob\nx", Origin: "n1"}}
	for _, r := range []*recorder{ra, rb} {
		r.waitFor(t, "broadcast and disconnects", func() bool { return len(r.bcasts) == 1 && len(r.discs) == 3 })
		if r.bcasts[0] != `{"hello":1}` || !slices.Equal(r.discs, want) {
			t.Fatalf("got %q %+v, want %+v", r.bcasts, r.discs, want)
		}
	}
}

func TestMalformedMessagesDroppedAndCounted(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, func(c *Config) { c.MaxMessageBytes = 1000 })
	b, rb := newNode(t, srv.Addr, func(c *Config) { c.MaxMessageBytes = 1000 })
	if err := b.Subscribe(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	ps := "turnstile:{m}:p"
	bad := []string{"garbage", "1:e", "x:e:1", "0:e:1", "1::1", "1:e:{not json", "1:e:" + string(make([]byte, 2000))}
	for _, m := range bad {
		if _, err := srv.Do("PUBLISH", ps, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"", "bnot json", "x"} {
		if _, err := srv.Do("PUBLISH", "turnstile:ctl", m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx, "m", []byte(`"ok"`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "the valid publication", func() bool { return len(rb.pubs) == 1 })
	if got, want := b.Stats().Dropped, uint64(len(bad)+3); got != want {
		t.Fatalf("Dropped = %d, want %d", got, want)
	}
	if p := rb.channel("m"); string(p[0].Data) != `"ok"` || len(rb.bcasts) != 0 {
		t.Fatalf("delivered %+v, broadcasts %q", p, rb.bcasts)
	}
}

// Killing the node's pub/sub connection: it reconnects, subscribes again,
// and what was published meanwhile is delivered from history, in order,
// before newer messages.
func TestPubSubReconnectFillsTheGap(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "g", []byte(`1`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "first", func() bool { return len(rb.pubs) == 1 })
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 20; i++ {
		if _, err := a.Publish(ctx, "g", []byte(strconv.Itoa(i)), broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rb.waitFor(t, "all 20 after the reconnect", func() bool { return len(rb.pubs) >= 20 })
	assertSequence(t, rb.channel("g"), 1, 20)
	if st := b.Stats(); st.Reconnects < 1 {
		t.Fatalf("Reconnects = %d, want ≥ 1", st.Reconnects)
	}
}

// The same for a channel that had no message before the outage: its
// position at Subscribe seeds the gap detection, so what was published
// while the pub/sub connection was down still arrives, in order.
func TestPubSubReconnectFillsTheGapOfAQuietChannel(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	if err := b.Subscribe(ctx, "quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := a.Publish(ctx, "quiet", []byte(strconv.Itoa(i)), broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rb.waitFor(t, "all 20 after the reconnect", func() bool { return len(rb.pubs) >= 20 })
	assertSequence(t, rb.channel("quiet"), 1, 20)
}

func TestUnavailableWhileRedisIsDownAndBackWithin5s(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	b, rb := newNode(t, srv.Addr, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	if err := b.Subscribe(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := a.Publish(ctx, "d", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish with Redis down: %v, want ErrUnavailable", err)
	}
	if _, err := a.Position(ctx, "d"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("position with Redis down: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := b.Health(); !errors.Is(err, ErrCanary) {
		t.Fatalf("Health with Redis down: %v, want ErrCanary", err)
	}
	srv.Restart()
	back := time.Now()
	var res broker.PublishResult
	for {
		var err error
		if res, err = a.Publish(ctx, "d", []byte(`"back"`), broker.PublishOptions{}); err == nil {
			n := len(rb.channel("d"))
			if n > 0 {
				break
			}
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("not delivering 5 s after Redis returned (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every publish that succeeded after the return is delivered, in order.
	rb.waitFor(t, "the last successful publish", func() bool {
		p := rb.pubs[len(rb.pubs)-1]
		return p.Offset == res.Position.Offset && p.Epoch == res.Position.Epoch
	})
	assertSequence(t, rb.channel("d"), int(rb.channel("d")[0].Offset), int(res.Position.Offset-rb.channel("d")[0].Offset+1))
	for b.Health() != nil {
		if time.Since(back) > 5*time.Second {
			t.Fatal("canary still failing 5 s after Redis returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCanaryTurnsRedWhenDeliveryStalls(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := newNode(t, srv.Addr, nil)
	time.Sleep(300 * time.Millisecond)
	if err := b.Health(); err != nil {
		t.Fatalf("Health = %v, want nil", err)
	}
	// Writes (PUBLISH included) paused: Redis answers PING, delivers nothing.
	if _, err := srv.Do("CLIENT", "PAUSE", "1500", "WRITE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)
	if err := b.Health(); !errors.Is(err, ErrCanary) {
		t.Fatalf("Health while pub/sub stalls = %v, want ErrCanary", err)
	}
	if lag := b.Stats().CanaryLag; lag < 300*time.Millisecond {
		t.Fatalf("CanaryLag = %v while stalled", lag)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatal("Health still failing after the pause ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Publications whose pub/sub message never reached this node (published
// with the script aimed at another pub/sub channel) are filled from
// history when the next one arrives, before it, in order.
func TestGapFilledFromHistory(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	if err := b.Subscribe(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "f", []byte(`1`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "first", func() bool { return len(rb.pubs) == 1 })
	meta, stream, _ := a.keys("f")
	for i := 2; i <= 5; i++ {
		err := publishScript.Exec(ctx, a.shards[0].client, []string{meta, stream, meta + "x"}, []string{
			randomID(), strconv.Itoa(i), "100", "60000", "60000", "nowhere", "0", "PUBLISH"}).Error()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx, "f", []byte(`6`), broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "six", func() bool { return len(rb.pubs) >= 6 })
	pubs := rb.channel("f")
	assertSequence(t, pubs, 1, 6)
	for i, p := range pubs {
		if string(p.Data) != strconv.Itoa(i+1) {
			t.Fatalf("publication %d data %s", i, p.Data)
		}
	}
	if st := b.Stats(); st.GapsFilled != 4 {
		t.Fatalf("GapsFilled = %d, want 4", st.GapsFilled)
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	before := srv.Calls()
	if _, err := a.Publish(ctx, "", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("empty channel: %v", err)
	}
	long := string(make([]byte, broker.MaxIdempotencyKeyLen+1))
	if _, err := a.Publish(ctx, "c", []byte(`1`), broker.PublishOptions{IdempotencyKey: long}); !errors.Is(err, broker.ErrIdempotencyKeyTooLong) {
		t.Errorf("long key: %v", err)
	}
	for _, d := range []broker.Disconnect{{}, {User: "u", Conn: "c"}, {User: "u", Origin: "a\nb"}} {
		if err := a.Disconnect(ctx, d); !errors.Is(err, broker.ErrBadDisconnect) {
			t.Errorf("disconnect %+v: %v", d, err)
		}
	}
	if after := srv.Calls(); after != before {
		// The canary may publish meanwhile: count only non-canary calls.
		st := srv.Info("commandstats")
		if _, ok := st["cmdstat_evalsha"]; ok {
			t.Errorf("a refused publish reached Redis")
		}
	}
}

// TestFailedCommandLogged: a command that fails reaches the log with its
// cause (callers see only ErrUnavailable), once a second however many
// fail; the next line says how many it stands for.
func TestFailedCommandLogged(t *testing.T) {
	srv := redistest.Start(t)
	var logs lockedBuffer
	a, _ := newNode(t, srv.Addr, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Timeout = 200 * time.Millisecond
	})
	srv.Kill()
	start := time.Now()
	for range 20 {
		if _, err := a.Publish(ctx, "r", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("publish with Redis down: %v, want ErrUnavailable", err)
		}
	}
	// One line a second, the canary's failures included (one may come
	// just before the first publish).
	if n, most := strings.Count(logs.String(), `msg="redis command failed"`), 2+int(time.Since(start)/time.Second); n < 1 || n > most {
		t.Fatalf("%d lines for 20 failed publishes in %v, want 1 to %d:\n%s", n, time.Since(start), most, logs.String())
	}
	if !strings.Contains(logs.String(), "err=") {
		t.Fatalf("the line does not say why:\n%s", logs.String())
	}
	time.Sleep(1100 * time.Millisecond)
	_, _ = a.Publish(ctx, "r", []byte(`1`), broker.PublishOptions{})
	if !strings.Contains(logs.String(), "more_since_last=") || strings.Count(logs.String(), `msg="redis command failed"`) < 2 {
		t.Fatalf("a second later, one more line counting the ones held back:\n%s", logs.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Redis restarted empty while a node's subscription was down: what was
// published in the new epoch before the node resubscribed is delivered
// from history, in order.
func TestNewEpochAfterRestartDeliveredFromHistory(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv.Addr, nil)
	b, rb := newNode(t, srv.Addr, nil)
	if err := b.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	first, err := a.Publish(ctx, "r", []byte(`"old"`), broker.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb.waitFor(t, "first", func() bool { return len(rb.pubs) == 1 })
	srv.Kill()
	srv.Restart()
	// Publish at once, before b's pub/sub is back (its backoff starts at
	// 50ms): these reach b only through the catch-up.
	var pos broker.Position
	for i := 1; i <= 3; {
		res, err := a.Publish(ctx, "r", []byte(strconv.Itoa(i)), broker.PublishOptions{})
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		pos = res.Position
		i++
	}
	if pos.Epoch == first.Position.Epoch || pos.Offset != 3 {
		t.Fatalf("after the restart: %+v, want offset 3 in a new epoch", pos)
	}
	rb.waitFor(t, "the new epoch's three", func() bool { return len(rb.pubs) >= 4 })
	got := rb.channel("r")[1:]
	assertSequence(t, got, 1, 3)
	if got[0].Epoch != pos.Epoch {
		t.Fatalf("epoch %q, want %q", got[0].Epoch, pos.Epoch)
	}
}

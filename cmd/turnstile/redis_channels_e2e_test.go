package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/turnstile-push/turnstile/internal/redistest"
)

// chanClient follows one channel like the browser client does: it keeps
// the last (offset, epoch) and resubscribes with it after a reconnect.
type chanClient struct {
	t       *testing.T
	c       *wsClient
	channel string
	offsets []uint64 // every offset received, in arrival order
	epoch   string
	last    uint64
}

func (cc *chanClient) send(v any) {
	b, _ := json.Marshal(v)
	if err := wsutil.WriteClientText(cc.c.conn, b); err != nil {
		cc.t.Fatalf("send: %v", err)
	}
}

// subscribe connects to node with a fresh ticket and subscribes, with the
// last position when there is one; it reads until "subscribed" and checks
// a recovery.
func (cc *chanClient) subscribe(node *testServer, token string) {
	t := cc.t
	_, url := node.Ticket(t, token)
	cc.c = dial(t, url)
	if w := cc.c.read(t); w["type"] != "welcome" {
		t.Fatalf("welcome = %v", w)
	}
	sub := map[string]any{"type": "subscribe", "id": 1, "channel": cc.channel}
	if cc.epoch != "" {
		sub["since"] = map[string]any{"offset": cc.last, "epoch": cc.epoch}
	}
	cc.send(sub)
	for {
		m := cc.c.read(t)
		switch m["type"] {
		case "subscribed":
			if cc.epoch != "" && m["recovered"] != true {
				t.Fatalf("resubscribe from %d:%s not recovered: %v", cc.last, cc.epoch, m)
			}
			if cc.epoch == "" {
				cc.epoch, _ = m["epoch"].(string)
				cc.last = uint64(m["offset"].(float64))
			}
			return
		case "message":
			cc.take(m)
		}
	}
}

func (cc *chanClient) take(m map[string]any) {
	if m["channel"] != cc.channel {
		return
	}
	off := uint64(m["offset"].(float64))
	cc.offsets = append(cc.offsets, off)
	cc.last = off
}

// readUntil reads messages until offset top has arrived or the connection
// ends (its node was killed): it reports whether top arrived.
func (cc *chanClient) readUntil(top uint64) bool {
	for cc.last < top {
		_ = cc.c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		data, _, err := wsutil.ReadServerData(cc.c.rw)
		if err != nil {
			return false
		}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil && m["type"] == "message" {
			cc.take(m)
		}
	}
	return true
}

// checkSequence: every offset from first to top exactly once, in order.
func (cc *chanClient) checkSequence(first, top uint64) {
	cc.t.Helper()
	want := first
	for _, o := range cc.offsets {
		if o != want {
			cc.t.Fatalf("offsets %v: got %d where %d was due (gap or duplicate)", cc.offsets, o, want)
		}
		want++
	}
	if want != top+1 {
		cc.t.Fatalf("offsets end at %d, want %d", want-1, top)
	}
}

func publishAt(t *testing.T, node *testServer, channel string, i int) (uint64, int) {
	t.Helper()
	var out struct{ Offset uint64 }
	code := node.do(t, "POST", "/publish", node.PublishKey, fmt.Sprintf(`{"channel":%q,"data":{"i":%d}}`, channel, i), &out)
	return out.Offset, code
}

// Publish at A: subscribers on B and C receive every message in offset
// order; then C is killed with SIGKILL mid-stream, its clients reconnect
// to A and B with their positions, and every client's sequence has no gap
// and no duplicate.
func TestRedisNodesFanOutAndSurviveNodeDeath(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	token := nodes[0].Login(t, "maggie", "secret")
	var clients []*chanClient
	for i := range 6 {
		cc := &chanClient{t: t, channel: "news"}
		cc.subscribe(nodes[i%3], token)
		clients = append(clients, cc)
	}
	const total = 60
	var top uint64
	for i := 1; i <= total/2; i++ {
		off, code := publishAt(t, nodes[0], "news", i)
		if code != http.StatusOK || off != uint64(i) {
			t.Fatalf("publish %d at A: status %d offset %d", i, code, off)
		}
		top = off
	}
	for _, cc := range clients {
		if !cc.readUntil(top) {
			t.Fatal("a subscriber lost its connection before the kill")
		}
	}
	// Kill C; keep publishing at A and B while its clients move.
	nodes[2].Signal(t, syscall.SIGKILL)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := total/2 + 1; i <= total; i++ {
			off, code := publishAt(t, nodes[i%2], "news", i)
			if code != http.StatusOK {
				t.Errorf("publish %d: status %d", i, code)
				return
			}
			if off != uint64(i) {
				t.Errorf("publish %d got offset %d", i, off)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for i, cc := range clients {
		if i%3 != 2 {
			continue
		}
		cc.readUntil(total) // ends when C dies
		cc.subscribe(nodes[i%2], token)
	}
	wg.Wait()
	for _, cc := range clients {
		if !cc.readUntil(total) {
			t.Fatal("a subscriber lost its connection")
		}
		cc.checkSequence(1, total)
	}
}

// Redis restarted mid-run: publishes answer 503 while it is down (none is
// silently lost: each either 200 with an offset or 503), and within 5 s of
// its return publishes work and reach the subscribers of other nodes.
func TestRedisRestartPublishesFailThenRecover(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 2)
	token := nodes[0].Login(t, "maggie", "secret")
	cc := &chanClient{t: t, channel: "news"}
	cc.subscribe(nodes[1], token)
	if _, code := publishAt(t, nodes[0], "news", 1); code != http.StatusOK {
		t.Fatalf("publish: %d", code)
	}
	cc.readUntil(1)
	redis.Kill()
	if _, code := publishAt(t, nodes[0], "news", 2); code != http.StatusServiceUnavailable {
		t.Fatalf("publish with Redis down: %d, want 503", code)
	}
	redis.Restart()
	back := time.Now()
	for {
		off, code := publishAt(t, nodes[0], "news", 3)
		if code == http.StatusOK {
			// Redis lost everything (no persistence): a new epoch from 1.
			if off != 1 {
				t.Fatalf("first publish after the restart got offset %d, want 1 (new epoch)", off)
			}
			break
		}
		if code != http.StatusServiceUnavailable || time.Since(back) > 5*time.Second {
			t.Fatalf("publish %v after Redis returned: %d", time.Since(back), code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		_ = cc.c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		data, _, err := wsutil.ReadServerData(cc.c.rw)
		if err != nil {
			resp, _ := http.Get(nodes[1].HTTP + "/metrics")
			body, _ := io.ReadAll(resp.Body)
			for _, l := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(l, "turnstile_redis") || strings.HasPrefix(l, "turnstile_channels") || strings.HasPrefix(l, "turnstile_subscriptions") {
					t.Log(l)
				}
			}
			t.Fatalf("no message after the restart: %v", err)
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		if m["type"] == "message" && m["channel"] == "news" {
			if m["offset"].(float64) != 1 || m["data"].(map[string]any)["i"].(float64) != 3 {
				t.Fatalf("after the restart got %v", m)
			}
			break
		}
	}
	if time.Since(back) > 5*time.Second {
		t.Fatalf("delivery back after %v, want within 5 s", time.Since(back))
	}
}

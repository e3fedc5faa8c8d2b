package redis

import (
	"strconv"
	"testing"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// On a three-master Redis Cluster: every channel's keys share a hash tag
// (the script runs on one shard), and publications of channels spread over
// the three masters reach the other node in order.
func TestClusterDeliveryAndHistory(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run("sharded="+strconv.FormatBool(sharded), func(t *testing.T) { testCluster(t, sharded) })
	}
}

func testCluster(t *testing.T, sharded bool) {
	cl := redistest.StartCluster(t)
	newClusterNode := func() (*Broker, *recorder) {
		c := redistest.Client(t, cl.Addrs()...)
		if len(c.Nodes()) != 3 {
			t.Fatalf("client sees %d nodes, want a 3-master cluster", len(c.Nodes()))
		}
		return startBroker(t, Config{Shards: []rueidis.Client{c}, Sharded: sharded})
	}
	a, _ := newClusterNode()
	b, rb := newClusterNode()
	channels := []string{"news", "chat:1", "chat:2", "x", "y", "z"}
	for _, ch := range channels {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		for _, ch := range channels {
			if _, err := a.Publish(ctx, ch, []byte(strconv.Itoa(i)), broker.PublishOptions{}); err != nil {
				t.Fatalf("publish %s: %v", ch, err)
			}
		}
	}
	rb.waitFor(t, "every publication", func() bool { return len(rb.pubs) >= 20*len(channels) })
	if sharded {
		// SPUBLISH reaches only the channel's shard: each master's
		// commandstats shows spublish, and none shows publish for them.
		spublished := 0
		for _, n := range cl.Nodes {
			if _, ok := n.Info("commandstats")["cmdstat_spublish"]; ok {
				spublished++
			}
		}
		if spublished < 2 {
			t.Fatalf("SPUBLISH ran on %d masters, want the channels spread over several", spublished)
		}
	}
	for _, ch := range channels {
		assertSequence(t, rb.channel(ch), 1, 20)
		pos, err := b.Position(ctx, ch)
		if err != nil || pos.Offset != 20 {
			t.Fatalf("%s: Position %+v, %v", ch, pos, err)
		}
		pubs, _, err := b.History(ctx, ch, broker.Position{Offset: 15, Epoch: pos.Epoch})
		if err != nil {
			t.Fatal(err)
		}
		assertSequence(t, pubs, 16, 5)
	}
}

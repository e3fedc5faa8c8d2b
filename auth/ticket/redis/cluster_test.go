package redis

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// On a three-master Redis Cluster the tickets spread over the masters
// and each is still redeemed exactly once, from either of two clients.
func TestClusterTickets(t *testing.T) {
	cl := redistest.StartCluster(t)
	sealer, _ := ticket.NewSealer(testKey)
	var stores []*Store
	for range 2 {
		c := redistest.Client(t, cl.Addrs()...)
		s, err := New(Config{Shards: []rueidis.Client{c}, Sealer: sealer, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	now := time.Now()
	const n = 300
	for i := range n {
		text, err := stores[i%2].IssueText(ticket.Claims{Subject: "u" + strconv.Itoa(i)}, now, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := redeem(stores[(i+1)%2], text, now)
		if err != nil || c.Subject != "u"+strconv.Itoa(i) {
			t.Fatalf("ticket %d: %+v, %v", i, c, err)
		}
		if _, err := redeem(stores[i%2], text, now); err != ticket.ErrInvalid {
			t.Fatalf("ticket %d redeemed twice: %v", i, err)
		}
	}
	holding := 0
	for _, node := range cl.Nodes {
		if _, ok := node.Info("commandstats")["cmdstat_getdel"]; ok {
			holding++
		}
	}
	if holding != 3 {
		t.Fatalf("GETDEL ran on %d masters, want the tickets spread over all 3", holding)
	}
}

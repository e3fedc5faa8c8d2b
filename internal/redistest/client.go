package redistest

import (
	"testing"

	"github.com/redis/rueidis"
)

// Client is a rueidis client of the servers at addrs (one standalone
// server, or a cluster's Addrs), without client-side caching, closed when
// the test ends (after the cleanups registered later, so a store or broker
// built on it closes first). A failure to connect fails the test.
func Client(t testing.TB, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

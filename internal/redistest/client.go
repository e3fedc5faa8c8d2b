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
	return NewClient(t, rueidis.ClientOption{InitAddress: addrs})
}

// NewClient is Client with the caller's options (client-side caching stays
// off): e.g. a ConnWriteTimeout longer than rueidis's 10 s default for a
// storm test on a loaded machine, where rueidis would otherwise drop a
// connection whose pipeline waits that long and fail its commands.
func NewClient(t testing.TB, opt rueidis.ClientOption) rueidis.Client {
	t.Helper()
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

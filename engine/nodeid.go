package engine

import (
	"crypto/rand"
	"strconv"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// newNodeID returns 40 random bits in base36, the prefix of this server's
// connection ids.
func newNodeID() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return strconv.FormatUint(n, 36)
}

// defaultBroker is the embedded broker with default limits, for a Config
// without one.
func defaultBroker() (broker.Broker, error) {
	return broker.NewMemory(broker.MemoryConfig{})
}

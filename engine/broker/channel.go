package broker

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// numShards spreads the channel map over independent locks, so publishes to
// different channels rarely meet on one; a publish takes its shard's lock
// (shared) only to find its channel, then the channel's own lock.
const numShards = 64

// channel is one channel's state. mu guards everything but lo, which the
// eviction queues read without it. A channel is freed (dead, removed from
// its shard) when it has no subscription, no history and no live
// idempotency key; whoever then wants it again creates a new one, with
// offsets from 1 and, if the old one had messages, a new epoch (epoch.go).
type channel struct {
	mu    sync.Mutex
	name  string // the broker's own copy
	epoch string
	top   uint64        // the last assigned offset, 0 if none
	lo    atomic.Uint64 // the oldest kept offset; top+1 when history is empty
	hist  ring
	keys  idemKeys
	subs  int // Subscribe calls minus Unsubscribe calls
	dead  bool
	fifo  *fifo // this channel's eviction stripe
}

func (c *channel) idle() bool { return c.subs == 0 && c.hist.len() == 0 && c.keys.len() == 0 }

type shard struct {
	mu    sync.RWMutex
	chans map[string]*channel
	// vacant counts the subscriptions of channels that have no state: a
	// subscribed channel that never had a message and whose name is not
	// lost needs none (its position is (0, zero epoch) until it is
	// published to, and create takes the count over). An idle personal
	// channel, one per connected user, so costs a map entry, not a channel.
	vacant     map[string]int32
	peak       int // most channels chans held since it was made: Go maps do not shrink
	vacantPeak int // the same for vacant
	fifo       *fifo
}

func (m *Memory) shardOf(name string) *shard {
	return &m.shards[maphash.String(m.seed, name)%numShards]
}

// lookup returns the live state of name, or nil.
func (s *shard) lookup(name string) *channel {
	s.mu.RLock()
	c := s.chans[name]
	s.mu.RUnlock()
	return c
}

// lockChannel returns name's state, created if needed, with its mutex
// held and not dead.
func (m *Memory) lockChannel(name string) *channel {
	s := m.shardOf(name)
	for {
		c := s.lookup(name)
		if c == nil {
			c = m.create(s, name)
		}
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock() // freed between lookup and lock: look again
	}
}

func (m *Memory) create(s *shard, name string) *channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.chans[name]; c != nil {
		return c
	}
	c := &channel{name: strings.Clone(name), epoch: m.epochFor(name), fifo: s.fifo}
	c.lo.Store(1)
	if n, ok := s.vacant[name]; ok {
		c.subs = int(n)
		delete(s.vacant, name)
	}
	s.chans[c.name] = c
	s.peak = max(s.peak, len(s.chans))
	m.chans.Add(1)
	return c
}

// free removes an idle channel; s.mu and c.mu are held. A channel that had
// messages is marked lost first (under s.mu, so a new life created in this
// shard, or a lookup that then misses, sees the mark).
func (m *Memory) free(s *shard, c *channel) {
	if c.top > 0 {
		m.lost.add(c.name)
	}
	c.dead = true
	delete(s.chans, c.name)
	m.chans.Add(-1)
}

// dropOldest removes c's oldest message; c.mu is held.
func (m *Memory) dropOldest(c *channel) {
	e := c.hist.pop()
	m.bytes.Add(-e.size())
	c.fifo.live.Add(-1)
	c.lo.Add(1)
}

// trimExpired drops c's messages older than the TTL at now; c.mu is held.
func (m *Memory) trimExpired(c *channel, now int64) {
	if c.hist.len() == 0 || c.hist.oldest().at > now-m.ttl {
		return
	}
	for c.hist.len() > 0 && c.hist.oldest().at <= now-m.ttl {
		m.dropOldest(c)
	}
	c.hist.release()
}

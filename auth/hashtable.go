package auth

import (
	"hash/maphash"
	"sync"
)

// hashTable is the bounded table behind the login throttle and the ticket
// quota: entries keyed by a keyed 64-bit hash of a name (never the name
// itself), spread over locked shards of at most perShard entries each.
// What an entry holds, and which entries go when a shard is full, is its
// owner's business. Safe for concurrent use through each shard's mu.
type hashTable[E any] struct {
	perShard int
	seed     maphash.Seed
	shards   [tableShards]tableShard[E]
}

const tableShards = 16

type tableShard[E any] struct {
	mu sync.Mutex
	m  map[uint64]E
	_  [48]byte // keep shards' locks on separate cache lines
}

// init makes an empty table for about maxEntries entries in all.
func (t *hashTable[E]) init(maxEntries int) {
	t.perShard = max(1, (maxEntries+tableShards-1)/tableShards)
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]E)
	}
}

// shard returns key's shard (unlocked) and its hash there.
func (t *hashTable[E]) shard(key string) (*tableShard[E], uint64) {
	h := maphash.String(t.seed, key)
	return &t.shards[h%tableShards], h
}

// full reports whether a new entry in s needs room made first (the owner
// evicts); s.mu is held.
func (t *hashTable[E]) full(s *tableShard[E]) bool { return len(s.m) >= t.perShard }

// len is the number of entries held.
func (t *hashTable[E]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

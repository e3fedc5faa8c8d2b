package broker

import (
	"hash/maphash"
	"strconv"
	"sync/atomic"
)

// Epochs. A channel's epoch must change whenever its history is lost, and
// a channel with nothing costs nothing, so a freed channel leaves no
// record. But freeing a channel that never had a message loses nothing,
// and a new epoch then would answer recovered:false to every client that
// reconnects to a quiet channel (an empty personal channel: every
// reconnect). So:
//
//   - A Memory's epochs all start with its random instance part: a restart
//     invalidates every position.
//   - A channel's first life in this Memory has the instance's zero epoch
//     "<inst>.0", also what Position says of a channel without state.
//   - Freeing a channel that had messages (top > 0) adds its name to the
//     lost filter; a channel whose name is in it gets a unique epoch
//     "<inst>.<generation>" in each later life.
//
// So a position (n, "<inst>.0") can only name the one life of its channel
// that had messages under that epoch, or a life without messages (n = 0),
// which is consistent with any life that follows. The lost filter is a
// Bloom filter of fixed size (lostBits bits): a false positive gives a
// channel a unique epoch it did not need (a client gets recovered:false,
// which is always safe); there are no false negatives, and it is never
// cleared (a new Memory has a new instance part).
const (
	lostBits   = 1 << 23 // 1 MiB; about 2% false positives after a million lost names
	lostHashes = 4
)

// lostFilter is a lock-free Bloom filter of channel names.
type lostFilter struct {
	words []atomic.Uint64
	seed  maphash.Seed
}

func newLostFilter() lostFilter {
	return lostFilter{words: make([]atomic.Uint64, lostBits/64), seed: maphash.MakeSeed()}
}

func (f *lostFilter) bits(name string, fn func(word, bit uint64) bool) bool {
	h := maphash.String(f.seed, name)
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(lostHashes) {
		b := (h1 + i*h2) % lostBits
		if !fn(b/64, b%64) {
			return false
		}
	}
	return true
}

func (f *lostFilter) add(name string) {
	f.bits(name, func(w, b uint64) bool { f.words[w].Or(1 << b); return true })
}

func (f *lostFilter) has(name string) bool {
	return f.bits(name, func(w, b uint64) bool { return f.words[w].Load()&(1<<b) != 0 })
}

// epochFor returns the epoch of a new life of name: the zero epoch unless
// an earlier life of it with messages was freed.
func (m *Memory) epochFor(name string) string {
	if m.lost.has(name) {
		return m.inst + "." + strconv.FormatUint(m.gen.Add(1), 36)
	}
	return m.zeroEpoch
}

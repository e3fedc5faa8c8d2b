package broker

import "strings"

// idemKeys remembers a channel's idempotency keys for the history TTL: the
// first publish with a key records its offset, and a later publish with
// the same key before it expires returns that offset instead of
// publishing. Keys of one channel expire in the order they were recorded
// (one TTL for all), so a FIFO beside the map expires them in O(1)
// amortized. Guarded by the channel's mutex; the count of all channels'
// keys is Memory.keys, bounded by MemoryConfig.IdempotencyMaxKeys.
type idemKeys struct {
	m     map[string]idemResult
	order []idemOrder
	head  int
	peak  int // most keys m held since it was made: Go maps do not shrink
}

type idemResult struct {
	offset  uint64
	expires int64 // unix nanoseconds
}

type idemOrder struct {
	key     string
	expires int64
}

func (k *idemKeys) len() int { return len(k.m) }

// lookup returns the offset recorded for key if it has not expired.
func (k *idemKeys) lookup(key string, now int64) (uint64, bool) {
	r, ok := k.m[key]
	if !ok || r.expires <= now {
		return 0, false
	}
	return r.offset, true
}

// record remembers key → offset until expires and reports whether the key
// is new to the map (not a replacement of an expired record). The key is
// cloned: the caller's string may share memory with a whole request body.
func (k *idemKeys) record(key string, offset uint64, expires int64) bool {
	if k.m == nil {
		k.m = make(map[string]idemResult)
	}
	_, had := k.m[key]
	key = strings.Clone(key)
	k.m[key] = idemResult{offset: offset, expires: expires}
	k.order = append(k.order, idemOrder{key: key, expires: expires})
	k.peak = max(k.peak, len(k.m))
	return !had
}

// expire forgets every key expired at now and returns how many it forgot.
func (k *idemKeys) expire(now int64) int {
	n := 0
	for k.head < len(k.order) && k.order[k.head].expires <= now {
		o := k.order[k.head]
		k.order[k.head] = idemOrder{}
		k.head++
		// The map may hold a newer record of the same key (recorded again
		// after this one expired); only the record this entry made goes.
		if r, ok := k.m[o.key]; ok && r.expires == o.expires {
			delete(k.m, o.key)
			n++
		}
	}
	switch {
	case k.head == len(k.order):
		k.order, k.head = nil, 0
	case k.head >= 64 && k.head >= len(k.order)/2:
		kept := copy(k.order, k.order[k.head:])
		clear(k.order[kept:])
		k.order, k.head = k.order[:kept], 0
	}
	switch {
	case len(k.m) == 0:
		k.m, k.peak = nil, 0 // an idle channel keeps no map
	case k.peak >= 64 && len(k.m) <= k.peak/4:
		// A burst of keys has mostly expired: a fresh map sized for the
		// rest (amortized O(1): the copy is a quarter of what expired).
		nm := make(map[string]idemResult, len(k.m))
		for key, r := range k.m {
			nm[key] = r
		}
		k.m, k.peak = nm, len(nm)
	}
	return n
}

package broker

// entryOverhead is what one kept message costs beside its payload (its ring
// slot and its eviction-queue entry, rounded up). HistoryMaxBytes counts it,
// so a flood of empty messages is bounded too.
const entryOverhead = 64

// histEntry is one kept message. Its offset is implied by its place in the
// ring, and its global order is kept by the eviction queue, so an entry is
// a slice and a time: four words.
type histEntry struct {
	data []byte // the broker's own copy; immutable
	at   int64  // publish time on Memory's clock (for the TTL)
}

func (e histEntry) size() int64 { return int64(len(e.data)) + entryOverhead }

// ring is a channel's history: a circular buffer that grows by doubling up
// to the history size, so a channel with few messages costs little and the
// steady state allocates nothing. Not safe for concurrent use: the
// channel's mutex guards it.
type ring struct {
	buf  []histEntry
	head int // index of the oldest entry
	n    int // entries held
}

func (r *ring) len() int { return r.n }

// at returns the i-th oldest entry (0 is the oldest).
func (r *ring) at(i int) *histEntry {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return &r.buf[j]
}

// oldest returns the oldest entry; the ring must not be empty.
func (r *ring) oldest() *histEntry { return &r.buf[r.head] }

// push appends e; the caller has made room (n < limit).
func (r *ring) push(e histEntry, limit int) {
	if r.n == len(r.buf) {
		r.grow(limit)
	}
	j := r.head + r.n
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	r.buf[j] = e
	r.n++
}

func (r *ring) grow(limit int) {
	c := 2 * len(r.buf)
	if c < 4 {
		c = 4
	}
	if c > limit {
		c = limit
	}
	r.resize(c)
}

// pop removes and returns the oldest entry; the ring must not be empty.
func (r *ring) pop() histEntry {
	e := r.buf[r.head]
	r.buf[r.head] = histEntry{} // release the payload
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return e
}

// release fits the buffer to what is left after trimming: none for an
// empty ring (a channel whose history expired keeps no slots), half when
// at most a quarter is used (a channel that once held many messages does
// not keep their slots after eviction cut it down). Amortized O(1): a
// halving copies at most a quarter of the slots it frees. Not called when
// a pop only makes room for a push.
func (r *ring) release() {
	switch {
	case r.n == 0:
		r.buf, r.head = nil, 0
	case len(r.buf) >= 16 && r.n <= len(r.buf)/4:
		r.resize(len(r.buf) / 2)
	}
}

// resize moves the entries, oldest first, into a new buffer of c slots.
func (r *ring) resize(c int) {
	nb := make([]histEntry, c)
	for i := 0; i < r.n; i++ {
		nb[i] = *r.at(i)
	}
	r.buf, r.head = nb, 0
}

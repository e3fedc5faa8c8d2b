package broker

import (
	"math"
	"sync"
	"sync/atomic"
)

// HistoryMaxBytes bounds all channels' history together, and when it is
// exceeded the globally oldest message goes first. Every message is
// queued in one of fifoStripes eviction queues (the stripe of its
// channel's shard) with a sequence number drawn from one atomic counter
// (an atomic add, not a lock) while the stripe's mutex is held, so each
// queue is sorted by sequence and the oldest message of all is exactly the
// smallest head among the stripes. A queue entry whose message already
// left its channel (size limit, TTL, a freed channel) is stale and
// skipped: a channel's messages only ever leave from its oldest end, so an
// entry is stale exactly when its offset is below its channel's lowest
// kept offset (channel.lo, an atomic; a reborn channel is another object).
//
// Costs: a publish pushes one entry (amortized O(1); a queue is compacted
// when stale entries outnumber live ones, so it stays O(live messages));
// an eviction reads fifoStripes head sequences without locks and pops a
// run from one stripe.
const fifoStripes = 8

type fifoEntry struct {
	ch     *channel
	offset uint64
	seq    uint64
}

type fifo struct {
	mu   sync.Mutex
	q    []fifoEntry
	head int
	live atomic.Int64  // messages of this stripe's channels still kept
	min  atomic.Uint64 // q[head].seq, or MaxUint64 when empty; written under mu
	_    [32]byte      // keep stripes on separate cache lines
}

func (e *fifoEntry) stale() bool { return e.offset < e.ch.lo.Load() }

// push queues ch's message at offset, numbered from seq. Called with ch's
// mutex held, so entries of one channel are queued in offset order.
func (f *fifo) push(seq *atomic.Uint64, ch *channel, offset uint64) {
	f.mu.Lock()
	if n := len(f.q) - f.head; n >= 1024 && int64(n) > 2*f.live.Load() {
		f.compact()
	} else if f.head >= 1024 && f.head >= len(f.q)/2 {
		f.shift()
	}
	f.q = append(f.q, fifoEntry{ch: ch, offset: offset, seq: seq.Add(1)})
	if f.head == len(f.q)-1 {
		f.setMin()
	}
	f.mu.Unlock()
}

// setMin publishes the head's sequence for the evictor's lock-free scan.
func (f *fifo) setMin() {
	if f.head < len(f.q) {
		f.min.Store(f.q[f.head].seq)
	} else {
		f.min.Store(math.MaxUint64)
	}
}

// compact drops stale entries, keeping order.
func (f *fifo) compact() {
	w := 0
	for i := f.head; i < len(f.q); i++ {
		if !f.q[i].stale() {
			f.q[w] = f.q[i]
			w++
		}
	}
	clear(f.q[w:])
	f.q, f.head = f.q[:w], 0
	if cap(f.q) >= 4096 && 4*w <= cap(f.q) {
		// Most entries were stale after a burst: give back the slots.
		f.q = append(make([]fifoEntry, 0, 2*w), f.q...)
	}
	f.setMin()
}

// tidy, called by the sweep, drops the stale entries so that queues of
// channels freed long ago keep neither memory nor their channel's state:
// all of them when nothing is live (O(1)), else by compaction when stale
// entries outnumber live ones.
func (f *fifo) tidy() {
	f.mu.Lock()
	if f.live.Load() == 0 {
		clear(f.q)
		f.q, f.head = nil, 0
		f.setMin()
	} else if int64(len(f.q)-f.head) > 2*f.live.Load() {
		f.compact()
	}
	f.mu.Unlock()
}

// shift moves the live part to the front so the slice is reused.
func (f *fifo) shift() {
	n := copy(f.q, f.q[f.head:])
	clear(f.q[n:])
	f.q, f.head = f.q[:n], 0
}

// liveHead drops stale entries at the head and returns the head, or
// false if the queue holds no live entry. f.mu must be held.
func (f *fifo) liveHead() (fifoEntry, bool) {
	for f.head < len(f.q) && f.q[f.head].stale() {
		f.q[f.head] = fifoEntry{}
		f.head++
	}
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
		f.setMin()
		return fifoEntry{}, false
	}
	f.setMin()
	return f.q[f.head], true
}

// popHead removes the head that liveHead returned. f.mu must be held.
func (f *fifo) popHead() {
	f.q[f.head] = fifoEntry{}
	f.head++
	f.setMin()
}

// evict brings the history back under HistoryMaxBytes. It is called after
// a publish, with no channel lock held. One goroutine evicts at a time; a
// publisher that finds another evicting leaves the work to it, and the
// evictor checks again after it lets go, so no excess is left behind.
func (m *Memory) evict() {
	for m.bytes.Load() > m.maxBytes {
		if !m.evictMu.TryLock() {
			return
		}
		progress := true
		for progress && m.bytes.Load() > m.maxBytes {
			progress = m.evictRun()
		}
		m.evictMu.Unlock()
		if !progress {
			return
		}
	}
}

// evictRun removes the oldest kept messages of all channels while the
// limit is exceeded, as long as they come from one stripe. It returns
// false if no stripe holds anything. m.evictMu must be held: it is the
// only place that pops live heads.
//
// The scan reads each stripe's head sequence without its lock. A stripe's
// min is never above its oldest live entry (a stale head only makes it
// lower, and new entries are younger than everything), so an entry of the
// best stripe whose sequence is below every other stripe's min is the
// oldest of all: the run pops those. A stale min costs a rescan, and each
// rescan drops at least one stale entry.
func (m *Memory) evictRun() bool {
	best, bestSeq, second := -1, uint64(math.MaxUint64), uint64(math.MaxUint64)
	for i := range m.fifos {
		switch s := m.fifos[i].min.Load(); {
		case s < bestSeq:
			best, bestSeq, second = i, s, bestSeq
		case s < second:
			second = s
		}
	}
	if best < 0 {
		return false
	}
	f := &m.fifos[best]
	f.mu.Lock()
	for m.bytes.Load() > m.maxBytes {
		e, ok := f.liveHead()
		if !ok || e.seq > second {
			break
		}
		f.popHead()
		f.mu.Unlock()
		// The channel's mutex is taken after the stripe's is released:
		// publishers take them in the other order.
		c := e.ch
		c.mu.Lock()
		for c.hist.len() > 0 && c.lo.Load() <= e.offset {
			m.dropOldest(c)
		}
		c.hist.release()
		c.mu.Unlock()
		f.mu.Lock()
	}
	f.mu.Unlock()
	return true
}

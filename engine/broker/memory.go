package broker

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures the embedded broker. Zero fields take their
// defaults; negative ones are an error.
type MemoryConfig struct {
	HistorySize     int              // messages kept per channel; default 100
	HistoryTTL      time.Duration    // default 5m; also the idempotency-key window; measured to within min(TTL/64, 100ms)
	HistoryMaxBytes int64            // all channels together; default 256 MiB; oldest evicted first
	Now             func() time.Time // nil: time.Now (tests)

	// IdempotencyMaxKeys bounds the idempotency keys remembered by all
	// channels together (about 150 bytes each); default 1,048,576. Past
	// it a publish with a new key fails with ErrTooManyIdempotencyKeys
	// and publishes nothing (it could not be deduplicated); publishes
	// without a key, and retries of remembered keys, still work.
	IdempotencyMaxKeys int
	// SweepInterval is how often the background sweep drops expired
	// history and keys and frees idle channels; default HistoryTTL/8,
	// between 50ms and 5s.
	SweepInterval time.Duration
}

// Defaults of MemoryConfig.
const (
	DefaultHistorySize        = 100
	DefaultHistoryTTL         = 5 * time.Minute
	DefaultHistoryMaxBytes    = 256 << 20
	DefaultIdempotencyMaxKeys = 1 << 20
)

// MemoryStats is a snapshot of the embedded broker's size, for metrics.
// Each field is exact at some moment; the fields are read one by one.
type MemoryStats struct {
	Channels        int64 // channel states held (with history, live keys, or subscribed after losing a history); a subscribed channel that never had a message holds none
	Messages        int64 // messages kept in history, all channels
	HistoryBytes    int64 // what HistoryMaxBytes bounds: payloads plus 64 bytes per message
	IdempotencyKeys int64 // keys remembered, all channels
}

const (
	stateNew int32 = iota
	stateStarted
	stateClosed
)

// Memory is the embedded, single-node Broker: offsets, epochs, bounded
// history and idempotency keys in this process's memory, delivered to the
// one Handler given to Start. Its epochs are new in every process (and in
// every Memory), so a restart makes every client position unrecoverable,
// as it must: the history is gone.
//
// Publishing takes the channel's shard lock (shared) to find the channel,
// then the channel's own mutex across offset assignment, history append
// and the call of HandlePublication, so offset order is delivery order.
// There is no global lock on the publish path: the max-bytes accounting
// is atomic counters and striped queues (evict.go).
//
// Start launches one background goroutine (the coarse clock and the
// sweep, sweep.go); Close stops it and waits for it. Every method is safe for concurrent use.
// None blocks on anything but the short critical sections above, and the
// Handler's own calls, which must not block and must not call back into
// the Memory (the channel's mutex is held during HandlePublication).
type Memory struct {
	size       int
	ttl        int64 // nanoseconds
	maxBytes   int64
	maxKeys    int64
	sweepEvery time.Duration
	tick       time.Duration    // how often run updates the coarse clock
	testNow    func() time.Time // MemoryConfig.Now, or nil
	base       time.Time        // the coarse clock's origin
	clock      atomic.Int64     // the coarse clock: nanoseconds since base

	seed      maphash.Seed
	inst      string        // this instance's random part of every epoch
	zeroEpoch string        // inst + ".0" (epoch.go)
	gen       atomic.Uint64 // channel generations, for epochs
	lost      lostFilter    // names whose history was lost (epoch.go)
	seq       atomic.Uint64 // global publish order, for max-bytes eviction

	shards  [numShards]shard
	fifos   [fifoStripes]fifo
	evictMu sync.Mutex

	bytes atomic.Int64
	chans atomic.Int64
	keys  atomic.Int64

	startMu sync.Mutex // serializes Start and Close
	state   atomic.Int32
	handler Handler      // set by Start before state becomes started
	life    sync.RWMutex // Broadcast and Disconnect (read) against Close (write)
	done    chan struct{}
	wg      sync.WaitGroup
}

var _ InProcess = (*Memory)(nil)

// InProcess reports true: a Memory never blocks on anything but its own
// short critical sections, and counts Subscribe calls. Safe for
// concurrent use.
func (m *Memory) InProcess() bool { return true }

// NewMemory returns an embedded broker; it delivers nothing until Start.
// It fails with ErrBadConfig (wrapped, naming the field) on a negative
// limit. Safe to call from any goroutine; the Memory it returns is safe
// for concurrent use.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	switch {
	case cfg.HistorySize < 0:
		return nil, fmt.Errorf("%w: HistorySize %d is negative", ErrBadConfig, cfg.HistorySize)
	case cfg.HistoryTTL < 0:
		return nil, fmt.Errorf("%w: HistoryTTL %v is negative", ErrBadConfig, cfg.HistoryTTL)
	case cfg.HistoryMaxBytes < 0:
		return nil, fmt.Errorf("%w: HistoryMaxBytes %d is negative", ErrBadConfig, cfg.HistoryMaxBytes)
	case cfg.IdempotencyMaxKeys < 0:
		return nil, fmt.Errorf("%w: IdempotencyMaxKeys %d is negative", ErrBadConfig, cfg.IdempotencyMaxKeys)
	case cfg.SweepInterval < 0:
		return nil, fmt.Errorf("%w: SweepInterval %v is negative", ErrBadConfig, cfg.SweepInterval)
	}
	if cfg.HistorySize == 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL == 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.HistoryMaxBytes == 0 {
		cfg.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	if cfg.IdempotencyMaxKeys == 0 {
		cfg.IdempotencyMaxKeys = DefaultIdempotencyMaxKeys
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = min(max(cfg.HistoryTTL/8, 50*time.Millisecond), 5*time.Second)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("broker: epoch: %w", err)
	}
	m := &Memory{
		size:       cfg.HistorySize,
		ttl:        int64(cfg.HistoryTTL),
		maxBytes:   cfg.HistoryMaxBytes,
		maxKeys:    int64(cfg.IdempotencyMaxKeys),
		sweepEvery: cfg.SweepInterval,
		tick:       min(max(cfg.HistoryTTL/64, time.Millisecond), 100*time.Millisecond),
		testNow:    cfg.Now,
		base:       time.Now(),
		seed:       maphash.MakeSeed(),
		inst:       base64.RawURLEncoding.EncodeToString(r[:]),
		lost:       newLostFilter(),
		done:       make(chan struct{}),
	}
	m.zeroEpoch = m.inst + ".0"
	for i := range m.shards {
		m.shards[i].chans = make(map[string]*channel)
		m.shards[i].vacant = make(map[string]int32)
		m.shards[i].fifo = &m.fifos[i%fifoStripes]
	}
	return m, nil
}

// Start makes the broker deliver to h and starts the background goroutine.
// It fails with ErrNilHandler, ErrStarted (second call) or ErrClosed.
// Safe for concurrent use (one call wins).
func (m *Memory) Start(h Handler) error {
	if h == nil {
		return ErrNilHandler
	}
	m.startMu.Lock()
	defer m.startMu.Unlock()
	switch m.state.Load() {
	case stateStarted:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}
	m.handler = h
	m.updateClock()
	m.state.Store(stateStarted)
	m.wg.Add(1)
	go m.run()
	return nil
}

// ready returns the handler, or why the broker cannot serve.
func (m *Memory) ready() (Handler, error) {
	switch m.state.Load() {
	case stateNew:
		return nil, ErrNotStarted
	case stateClosed:
		return nil, ErrClosed
	}
	return m.handler, nil
}

// Close stops the sweep and delivery and waits for both: once it returns,
// no Handler method is running or will be called, and every other method
// fails with ErrClosed. History is dropped with the Memory. A second Close
// returns nil. Safe for concurrent use.
func (m *Memory) Close() error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	prev := m.state.Swap(stateClosed)
	if prev == stateClosed {
		return nil
	}
	// Publishers check the state under their channel's mutex: after one
	// lock round over every channel, none is delivering and none will.
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		for _, c := range s.chans {
			c.mu.Lock()
			c.mu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
		}
		s.mu.RUnlock()
	}
	m.life.Lock()
	m.life.Unlock() //nolint:staticcheck // a barrier for Broadcast and Disconnect
	if prev == stateStarted {
		close(m.done)
		m.wg.Wait()
	}
	return nil
}

func (m *Memory) messages() int64 {
	var n int64
	for i := range m.fifos {
		n += m.fifos[i].live.Load()
	}
	return n
}

// nanos is the broker's clock in nanoseconds: the test clock if one was
// configured, else the coarse clock. Reading the time costs 100-300 ns on
// some virtual machines, which would be a third of a publish; the coarse
// clock is one atomic load, updated by run every tick (at most 100 ms,
// TTL/64 for short TTLs), so ages are measured to within a tick.
func (m *Memory) nanos() int64 {
	if m.testNow != nil {
		return m.testNow().UnixNano()
	}
	return m.clock.Load()
}

// updateClock sets the coarse clock from the monotonic clock.
func (m *Memory) updateClock() { m.clock.Store(int64(time.Since(m.base))) }

// Stats returns the broker's current size. Safe for concurrent use, at
// any time (also before Start and after Close).
func (m *Memory) Stats() MemoryStats {
	return MemoryStats{
		Channels:        m.chans.Load(),
		Messages:        m.messages(),
		HistoryBytes:    m.bytes.Load(),
		IdempotencyKeys: m.keys.Load(),
	}
}

package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures the embedded broker. Zero fields take their
// defaults; negative ones are an error.
type MemoryConfig struct {
	HistorySize     int              // messages kept per channel; default 100
	HistoryTTL      time.Duration    // default 5m; also the idempotency-key window
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
	Channels        int64 // channel states held (subscribed, with history, or with live keys)
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
// Start launches one background goroutine (the sweep, sweep.go); Close
// stops it and waits for it. Every method is safe for concurrent use.
// None blocks on anything but the short critical sections above, and the
// Handler's own calls, which must not block and must not call back into
// the Memory (the channel's mutex is held during HandlePublication).
type Memory struct {
	size       int
	ttl        int64 // nanoseconds
	maxBytes   int64
	maxKeys    int64
	sweepEvery time.Duration
	nanos      func() int64 // the clock, in nanoseconds from an arbitrary origin

	seed maphash.Seed
	inst string        // this instance's random part of every epoch
	gen  atomic.Uint64 // channel generations, for epochs
	seq  atomic.Uint64 // global publish order, for max-bytes eviction

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

var _ Broker = (*Memory)(nil)

// NewMemory returns an embedded broker; it delivers nothing until Start.
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
		nanos:      clockOf(cfg.Now),
		seed:       maphash.MakeSeed(),
		inst:       base64.RawURLEncoding.EncodeToString(r[:]),
		done:       make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].chans = make(map[string]*channel)
		m.shards[i].fifo = &m.fifos[i%fifoStripes]
	}
	return m, nil
}

// newEpoch returns an epoch no other channel state of any Memory has had:
// the instance's random part and a generation.
func (m *Memory) newEpoch() string {
	return m.inst + "." + strconv.FormatUint(m.gen.Add(1), 36)
}

// Start makes the broker deliver to h and starts the background sweep.
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

// Publish assigns the channel's next offset, keeps a copy of data in its
// history and, if this node is subscribed to the channel, calls
// HandlePublication before it returns, all under the channel's mutex.
// data is copied once; the caller may reuse it. Errors: ErrNotStarted,
// ErrClosed, ErrEmptyChannel, ErrIdempotencyKeyTooLong,
// ErrTooManyIdempotencyKeys, or ctx's error if ctx is already done (then
// nothing was published). Safe for concurrent use.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (PublishResult, error) {
	h, err := m.ready()
	if err != nil {
		return PublishResult{}, err
	}
	key := opts.IdempotencyKey
	switch {
	case channel == "":
		return PublishResult{}, ErrEmptyChannel
	case len(key) > MaxIdempotencyKeyLen:
		return PublishResult{}, ErrIdempotencyKeyTooLong
	}
	if err := ctx.Err(); err != nil {
		return PublishResult{}, err
	}
	cp := make([]byte, len(data))
	copy(cp, data)
	now := m.nanos()

	c := m.lockChannel(channel)
	if m.state.Load() == stateClosed {
		c.mu.Unlock()
		return PublishResult{}, ErrClosed
	}
	m.trimExpired(c, now)
	if key != "" {
		m.keys.Add(-int64(c.keys.expire(now)))
		if off, ok := c.keys.lookup(key, now); ok {
			res := PublishResult{Position: Position{Offset: off, Epoch: c.epoch}, Duplicate: true}
			c.mu.Unlock()
			return res, nil
		}
		if m.keys.Load() >= m.maxKeys {
			c.mu.Unlock()
			return PublishResult{}, ErrTooManyIdempotencyKeys
		}
	}
	c.top++
	off := c.top
	e := histEntry{data: cp, at: now}
	delta := e.size()
	if c.hist.len() == m.size {
		// A full ring replaces its oldest: one atomic for the bytes, none
		// for the message count (dropOldest would take three).
		delta -= c.hist.pop().size()
		c.lo.Add(1)
	} else {
		c.fifo.live.Add(1)
	}
	c.hist.push(e, m.size)
	m.bytes.Add(delta)
	c.fifo.push(&m.seq, c, off)
	if key != "" && c.keys.record(key, off, now+m.ttl) {
		m.keys.Add(1)
	}
	if c.subs > 0 {
		h.HandlePublication(Publication{Channel: c.name, Offset: off, Epoch: c.epoch, Data: cp})
	}
	res := PublishResult{Position: Position{Offset: off, Epoch: c.epoch}}
	c.mu.Unlock()
	m.evict()
	return res, nil
}

// Broadcast copies data and hands it to HandleBroadcast before it returns;
// nothing is kept. Errors: ErrNotStarted, ErrClosed, ctx's error. Safe for
// concurrent use (HandleBroadcast may then run concurrently with itself).
func (m *Memory) Broadcast(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.life.RLock()
	defer m.life.RUnlock()
	h, err := m.ready()
	if err != nil {
		return err
	}
	cp := make([]byte, len(data))
	copy(cp, data)
	h.HandleBroadcast(cp)
	return nil
}

// Disconnect hands d to HandleDisconnect before it returns. Exactly one of
// d.User and d.Conn must be set (else ErrBadDisconnect). Errors also:
// ErrNotStarted, ErrClosed, ctx's error. Safe for concurrent use.
func (m *Memory) Disconnect(ctx context.Context, d Disconnect) error {
	if (d.User == "") == (d.Conn == "") {
		return ErrBadDisconnect
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.life.RLock()
	defer m.life.RUnlock()
	h, err := m.ready()
	if err != nil {
		return err
	}
	h.HandleDisconnect(d)
	return nil
}

// Subscribe makes HandlePublication receive the channel's publications
// from the next offset on. Calls are counted: the channel stays subscribed
// until as many Unsubscribe calls have come, so a late Unsubscribe racing
// a new Subscribe cannot silence the channel. Errors: ErrNotStarted,
// ErrClosed, ErrEmptyChannel. Safe for concurrent use.
func (m *Memory) Subscribe(ctx context.Context, channel string) error {
	if _, err := m.ready(); err != nil {
		return err
	}
	if channel == "" {
		return ErrEmptyChannel
	}
	c := m.lockChannel(channel)
	c.subs++
	c.mu.Unlock()
	return nil
}

// Unsubscribe undoes one Subscribe; when none is left the channel is no
// longer delivered, and if it also has no history and no live key its
// state is freed at once (its next use starts a new epoch). Errors:
// ErrNotSubscribed, ErrNotStarted, ErrClosed, ErrEmptyChannel. Safe for
// concurrent use.
func (m *Memory) Unsubscribe(ctx context.Context, channel string) error {
	if _, err := m.ready(); err != nil {
		return err
	}
	if channel == "" {
		return ErrEmptyChannel
	}
	now := m.nanos()
	s := m.shardOf(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chans[channel]
	if c == nil {
		return ErrNotSubscribed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs == 0 {
		return ErrNotSubscribed
	}
	c.subs--
	m.trimExpired(c, now)
	m.keys.Add(-int64(c.keys.expire(now)))
	if c.idle() {
		m.free(s, c)
	}
	return nil
}

// Position returns the channel's last offset and epoch. A channel without
// state (never used, or freed) answers offset 0 and a fresh epoch that no
// later state will have: nothing can be recovered from it. Errors:
// ErrNotStarted, ErrClosed, ErrEmptyChannel. Safe for concurrent use.
func (m *Memory) Position(ctx context.Context, channel string) (Position, error) {
	if _, err := m.ready(); err != nil {
		return Position{}, err
	}
	if channel == "" {
		return Position{}, ErrEmptyChannel
	}
	c := m.shardOf(channel).lookup(channel)
	if c == nil {
		return Position{Epoch: m.newEpoch()}, nil
	}
	c.mu.Lock()
	p := Position{Offset: c.top, Epoch: c.epoch}
	c.mu.Unlock()
	return p, nil
}

// History returns every publication after since, in offset order, and the
// current position; since.Offset equal to the top (same epoch) gives none
// and a nil error. If since cannot be served completely — another epoch,
// an offset past the top, or messages after it trimmed by size, age or
// max bytes, or a channel without state — it returns ErrUnrecoverable, the
// current position and no publications. The publications share their Data
// with the history (immutable). Errors also: ErrNotStarted, ErrClosed,
// ErrEmptyChannel. Safe for concurrent use.
func (m *Memory) History(ctx context.Context, channel string, since Position) ([]Publication, Position, error) {
	if _, err := m.ready(); err != nil {
		return nil, Position{}, err
	}
	if channel == "" {
		return nil, Position{}, ErrEmptyChannel
	}
	c := m.shardOf(channel).lookup(channel)
	if c == nil {
		return nil, Position{Epoch: m.newEpoch()}, ErrUnrecoverable
	}
	now := m.nanos()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		// Freed after the lookup; its successor, if any, has a new epoch.
		return nil, Position{Epoch: m.newEpoch()}, ErrUnrecoverable
	}
	m.trimExpired(c, now)
	pos := Position{Offset: c.top, Epoch: c.epoch}
	switch {
	case since.Epoch != c.epoch, since.Offset > c.top:
		return nil, pos, ErrUnrecoverable
	case since.Offset == c.top:
		return nil, pos, nil
	}
	lo := c.lo.Load()
	if since.Offset+1 < lo {
		return nil, pos, ErrUnrecoverable
	}
	out := make([]Publication, c.top-since.Offset)
	first := int(since.Offset + 1 - lo)
	for i := range out {
		out[i] = Publication{
			Channel: c.name,
			Offset:  since.Offset + 1 + uint64(i),
			Epoch:   c.epoch,
			Data:    c.hist.at(first + i).data,
		}
	}
	return out, pos, nil
}

func (m *Memory) messages() int64 {
	var n int64
	for i := range m.fifos {
		n += m.fifos[i].live.Load()
	}
	return n
}

// clockOf returns now as nanoseconds. Without a test clock it reads only
// the monotonic clock (time.Since), which costs about half of time.Now on
// the publish path and ignores wall-clock jumps, as a TTL should.
func clockOf(now func() time.Time) func() int64 {
	if now != nil {
		return func() int64 { return now().UnixNano() }
	}
	base := time.Now()
	return func() int64 { return int64(time.Since(base)) }
}

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

// Package redis is the Redis broker.Broker: offsets, epochs and history in
// Redis (a hash and a Stream per channel), fan-out between nodes through
// Redis pub/sub, so that every node sharing the Redis sees one history per
// channel and every publication of the channels it has subscribers for.
//
// Keys of channel ch, all with the hash tag {ch} so that they live on one
// shard of a Redis Cluster:
//
//	<prefix>{ch}:m     hash: e = epoch, o = last offset (TTL MetaTTL)
//	<prefix>{ch}:s     stream of the history, entry id <offset>-0, field d
//	                   (MAXLEN HistorySize, TTL HistoryTTL after the last publish)
//	<prefix>{ch}:i:<k> a publish's result under idempotency key k (TTL HistoryTTL)
//	<prefix>{ch}:p     the pub/sub channel: "<offset>:<epoch>:<data>"
//	<prefix>ctl        pub/sub of broadcasts ("b" + data) and disconnects
//	                   ("u" + user, "c" + conn), on the first shard
//	<prefix>canary:<node> each node's canary (its own delivery check)
//
// One Lua script per publish assigns the offset, appends to the stream,
// refreshes the TTLs and publishes: offset order is delivery order. The
// epoch is created (from a random value the client passes) whenever the
// hash is missing — a new channel, an expired one, a flushed Redis — and
// the stale stream is dropped with it, so an old position never matches.
//
// Delivery: each shard has one dedicated pub/sub connection, subscribed to
// exactly the channels this node has local subscribers for, and one
// dispatcher goroutine that hands publications to the Handler in offset
// order. A gap in a channel's offsets (messages published while the
// subscription was down) is filled from the stream before the next one is
// delivered; duplicates are dropped. After a reconnect every channel is
// subscribed again and brought up to date the same way.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
	"github.com/turnstile-push/turnstile/internal/ratelog"
)

// Config configures a Broker.
type Config struct {
	// Shards are the Redis clients, one per Redis server; a channel lives
	// on the shard its name picks by jump consistent hash. Required.
	Shards []rueidis.Client
	// Prefix of every key and pub/sub channel; default "turnstile:".
	Prefix string
	// HistorySize is the most messages kept per channel; default 100.
	HistorySize int
	// HistoryTTL is how long a channel's history lives after its last
	// publish, and idempotency keys after theirs; default 5m.
	HistoryTTL time.Duration
	// MetaTTL is how long a channel's epoch and offset live after its last
	// publish or position read; default 24h (at least HistoryTTL).
	MetaTTL time.Duration
	// Timeout of one command; default 2s.
	Timeout time.Duration
	// MaxMessageBytes: larger pub/sub messages (another writer) are
	// dropped and counted; default 4 MiB.
	MaxMessageBytes int
	// CanaryInterval: how often the node publishes its canary on every
	// shard; default 1s. Health fails when none arrived for 3 intervals.
	CanaryInterval time.Duration
	// Sharded uses a Redis Cluster's sharded pub/sub (SPUBLISH and
	// SSUBSCRIBE, Redis 7): a publication travels to its channel's shard
	// only, instead of to every cluster node. The control channel and the
	// canary stay on classic pub/sub (every node must hear them).
	Sharded bool
	// Logger for reconnects and dropped messages; nil discards.
	Logger *slog.Logger
}

// Broker is the Redis broker. All methods are safe for concurrent use;
// every method but Start may block on Redis.
type Broker struct {
	cfg    Config
	node   string // random id of this node, for its canary channel
	shards []*shard
	ctl    string // control pub/sub channel

	handler atomic.Pointer[handlerBox]
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	stats counters
	// errLog lets one failed command a second reach the log, with its
	// cause: the callers see only ErrUnavailable (a 503).
	errLog ratelog.Limiter
}

type handlerBox struct{ h broker.Handler }

type counters struct {
	commands, errors, reconnects, dropped, gapsFilled, gapsLost atomic.Uint64
	latencyNanos                                                atomic.Uint64
}

// Stats counts what the broker did.
type Stats struct {
	Commands   uint64        // commands and scripts sent
	Errors     uint64        // of them failed (Redis unreachable, too slow, refused)
	Latency    time.Duration // total time spent in commands (Latency/Commands is the mean)
	Reconnects uint64        // pub/sub connections re-established
	Dropped    uint64        // malformed or oversized pub/sub messages dropped
	GapsFilled uint64        // publications delivered from history to fill a gap
	GapsLost   uint64        // gaps history could not fill (trimmed or expired)
	CanaryLag  time.Duration // the worst shard's time since its last canary arrived
}

// Errors of New.
var (
	ErrNoShards = errors.New("broker/redis: no Redis client")
	ErrStarted  = errors.New("broker/redis: Start called twice")
)

// New returns a Broker for cfg; Start begins delivery.
func New(cfg Config) (*Broker, error) {
	if len(cfg.Shards) == 0 {
		return nil, ErrNoShards
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "turnstile:"
	}
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = 100
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = 5 * time.Minute
	}
	if cfg.MetaTTL <= 0 {
		cfg.MetaTTL = 24 * time.Hour
	}
	cfg.MetaTTL = max(cfg.MetaTTL, cfg.HistoryTTL)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 4 << 20
	}
	if cfg.CanaryInterval <= 0 {
		cfg.CanaryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{cfg: cfg, node: randomID(), ctl: cfg.Prefix + "ctl"}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for i, c := range cfg.Shards {
		b.shards = append(b.shards, newShard(b, i, c))
	}
	return b, nil
}

// Start subscribes every shard's pub/sub connection (the control channel
// and the canary) and begins delivering to h. It returns once the first
// shard's subscription is confirmed, or ErrUnavailable (delivery then
// starts by itself when Redis comes back). Safe for concurrent use; call
// it once.
func (b *Broker) Start(h broker.Handler) error {
	if !b.handler.CompareAndSwap(nil, &handlerBox{h}) {
		return ErrStarted
	}
	for _, s := range b.shards {
		b.wg.Add(2)
		go s.run()
		go s.dispatch()
	}
	b.wg.Add(1)
	go b.canary()
	select {
	case <-b.shards[0].ready:
		return nil
	case <-time.After(b.cfg.Timeout):
		return broker.ErrUnavailable
	}
}

// Close stops delivery and waits for the broker's goroutines; it does not
// close the clients (they belong to the caller). Safe for concurrent use.
func (b *Broker) Close() error {
	b.cancel()
	for _, s := range b.shards {
		s.close()
	}
	b.wg.Wait()
	return nil
}

// Stats returns the counters. Safe for concurrent use.
func (b *Broker) Stats() Stats {
	st := Stats{
		Commands:   b.stats.commands.Load(),
		Errors:     b.stats.errors.Load(),
		Latency:    time.Duration(b.stats.latencyNanos.Load()),
		Reconnects: b.stats.reconnects.Load(),
		Dropped:    b.stats.dropped.Load(),
		GapsFilled: b.stats.gapsFilled.Load(),
		GapsLost:   b.stats.gapsLost.Load(),
	}
	now := time.Now().UnixNano()
	for _, s := range b.shards {
		st.CanaryLag = max(st.CanaryLag, time.Duration(now-s.lastCanary.Load()))
	}
	return st
}

// ErrCanary: a shard's canary has not arrived for three intervals: this
// node's pub/sub delivery is down or wedged.
var ErrCanary = errors.New("broker/redis: pub/sub canary not arriving")

// Health returns nil when every shard's canary arrived within the last
// three canary intervals, and ErrCanary otherwise. Safe for concurrent
// use.
func (b *Broker) Health() error {
	now := time.Now().UnixNano()
	for _, s := range b.shards {
		if time.Duration(now-s.lastCanary.Load()) > 3*b.cfg.CanaryInterval {
			return ErrCanary
		}
	}
	return nil
}

func (b *Broker) publishCmd() string {
	if b.cfg.Sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// shardFor picks a channel's shard.
func (b *Broker) shardFor(channel string) *shard {
	if len(b.shards) == 1 {
		return b.shards[0]
	}
	h := fnv.New64a()
	h.Write([]byte(channel))
	return b.shards[jump(h.Sum64(), len(b.shards))]
}

// doIdempotent is do for reads (Position, History): one immediate retry, so
// that a connection broken by a Redis restart costs a retry, not an error.
func (b *Broker) doIdempotent(ctx context.Context, run func(ctx context.Context) rueidis.RedisResult) (rueidis.RedisResult, error) {
	r, err := b.do(ctx, run)
	if err != nil && ctx.Err() == nil {
		r, err = b.do(ctx, run)
	}
	return r, err
}

// do runs one command or script with the timeout, counting it; any failure
// but a Redis nil reply is ErrUnavailable.
func (b *Broker) do(ctx context.Context, run func(ctx context.Context) rueidis.RedisResult) (rueidis.RedisResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	r := run(ctx)
	b.stats.commands.Add(1)
	b.stats.latencyNanos.Add(uint64(time.Since(start)))
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		b.stats.errors.Add(1)
		if ok, held := b.errLog.Allow(time.Now()); ok && b.ctx.Err() == nil {
			b.cfg.Logger.Warn("redis command failed", "err", err, "more_since_last", held)
		}
		return r, broker.ErrUnavailable
	}
	return r, nil
}

func (b *Broker) keys(channel string) (meta, stream, pubsub string) {
	base := b.cfg.Prefix + "{" + channel + "}"
	return base + ":m", base + ":s", base + ":p"
}

// randomID returns 96 random bits as 16 characters of base64url: node ids
// and epochs.
func randomID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return base64.RawURLEncoding.EncodeToString(r[:])
}

// jump is Lamping and Veach's jump consistent hash.
func jump(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

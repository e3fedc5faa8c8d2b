package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// Store is the Redis ticket.Store. A ticket is sealed (ticket.Sealer: key
// id, expiry, MAC) so that a node refuses a forged, malformed or expired
// one alone; a ticket that opens is redeemed with one GETDEL of its key, so
// of any number of redeems of one ticket on any number of nodes exactly one
// gets the claims. Issue writes the claims with SET … PX ttl.
//
// Round trips: rueidis pipelines the commands of concurrent callers on one
// connection, so a redeem storm of n handshakes costs about n/batch writes
// rather than n round trips (BenchmarkClient).
//
// With several shards (several Redis servers) a ticket's key lives on the
// shard its random id picks by jump consistent hash.
//
// All methods are safe for concurrent use. Issue, IssueText and Redeem
// block on the network; RedeemAsync does not.
type Store struct {
	shards  []rueidis.Client
	sealer  *ticket.Sealer
	prefix  string
	timeout time.Duration
	slots   chan struct{} // RedeemAsync in flight

	issued, redeemed, rejected, misses, unavailable atomic.Uint64
}

// Config configures a Store.
type Config struct {
	// Shards are the Redis clients, one per Redis server (or one for a
	// Redis Cluster). Required.
	Shards []rueidis.Client
	// Sealer seals and opens tickets. Required: every node must hold the
	// same keys (-ticket-key).
	Sealer *ticket.Sealer
	// Prefix of every key; default "turnstile:".
	Prefix string
	// Timeout of one command; default 2s.
	Timeout time.Duration
	// MaxInFlight bounds concurrent RedeemAsync calls; past it they fail
	// with ErrUnavailable at once. Default 65536.
	MaxInFlight int
}

// Errors of New.
var (
	ErrNoShards = errors.New("ticket/redis: no Redis client")
	ErrNoSealer = errors.New("ticket/redis: no Sealer (ticket keys)")
)

// New returns a Store for cfg.
func New(cfg Config) (*Store, error) {
	if len(cfg.Shards) == 0 {
		return nil, ErrNoShards
	}
	if cfg.Sealer == nil {
		return nil, ErrNoSealer
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "turnstile:"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1 << 16
	}
	return &Store{
		shards:  cfg.Shards,
		sealer:  cfg.Sealer,
		prefix:  cfg.Prefix,
		timeout: cfg.Timeout,
		slots:   make(chan struct{}, cfg.MaxInFlight),
	}, nil
}

// Stats counts what the Store did.
type Stats struct {
	Issued      uint64 // tickets written
	Redeemed    uint64 // redeems that got claims
	Rejected    uint64 // refused without a round trip (forged, malformed, expired)
	Misses      uint64 // refused by Redis: unknown or already used
	Unavailable uint64 // Redis could not be reached or was too slow
}

// Stats returns the counters. Safe for concurrent use.
func (s *Store) Stats() Stats {
	return Stats{s.issued.Load(), s.redeemed.Load(), s.rejected.Load(), s.misses.Load(), s.unavailable.Load()}
}

func (s *Store) key(id ticket.Ticket) string {
	return s.prefix + "t:" + string(id[:])
}

func (s *Store) shard(id ticket.Ticket) rueidis.Client {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	return s.shards[jump(binary.LittleEndian.Uint64(id[:8]), len(s.shards))]
}

// IssueText stores c under a fresh sealed ticket valid until now+ttl (or
// the session's end, if sooner) and returns the ticket's text. It fails
// with ErrUnavailable when Redis cannot be reached. Safe for concurrent
// use; blocks on Redis.
func (s *Store) IssueText(c ticket.Claims, now time.Time, ttl time.Duration) (string, error) {
	_, text, err := s.issue(c, now, ttl)
	return text, err
}

// Issue is IssueText returning the ticket's random id; clients need the
// text from IssueText. Safe for concurrent use; blocks on Redis.
func (s *Store) Issue(c ticket.Claims, now time.Time, ttl time.Duration) (ticket.Ticket, error) {
	id, _, err := s.issue(c, now, ttl)
	return id, err
}

func (s *Store) issue(c ticket.Claims, now time.Time, ttl time.Duration) (ticket.Ticket, string, error) {
	expires := now.Add(ttl)
	if e := c.SessionExpires; !e.IsZero() && e.Before(expires) {
		expires = e
	}
	left := expires.Sub(now).Milliseconds()
	if left <= 0 {
		return ticket.Ticket{}, "", ticket.ErrInvalid
	}
	id, err := ticket.New()
	if err != nil {
		return ticket.Ticket{}, "", err
	}
	text := s.sealer.Seal(id, expires)
	cl := s.shard(id)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// One retry: a SET of a fresh 128-bit key is idempotent, so a
	// connection that broke (Redis restarted) costs a retry, not a 503;
	// a Redis that is down fails both at once (no waiting for a timeout).
	value := rueidis.BinaryString(encodeClaims(nil, c))
	set := func() error {
		return cl.Do(ctx, cl.B().Set().Key(s.key(id)).Value(value).PxMilliseconds(left).Build()).Error()
	}
	err = set()
	if err != nil && ctx.Err() == nil {
		err = set()
	}
	if err != nil {
		s.unavailable.Add(1)
		return ticket.Ticket{}, "", ticket.ErrUnavailable
	}
	s.issued.Add(1)
	return id, text, nil
}

// Redeem opens text and consumes it with one GETDEL. It blocks on Redis:
// the engine uses RedeemAsync. Safe for concurrent use.
func (s *Store) Redeem(text []byte, now time.Time) (ticket.Claims, error) {
	id, _, err := s.sealer.Open(text, now)
	if err != nil {
		s.rejected.Add(1)
		return ticket.Claims{}, err
	}
	return s.getdel(id)
}

// RedeemAsync opens text on the caller's goroutine (no allocation, no
// round trip for a ticket that cannot be valid) and, if it opens, consumes
// it with one GETDEL on a goroutine of its own, then calls done. See
// ticket.AsyncRedeemer. Safe for concurrent use; does not block.
func (s *Store) RedeemAsync(text []byte, now time.Time, done func(ticket.Claims, error)) error {
	id, _, err := s.sealer.Open(text, now)
	if err != nil {
		s.rejected.Add(1)
		return err
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.unavailable.Add(1)
		return ticket.ErrUnavailable
	}
	go func() {
		c, err := s.getdel(id)
		<-s.slots
		done(c, err)
	}()
	return nil
}

func (s *Store) getdel(id ticket.Ticket) (ticket.Claims, error) {
	cl := s.shard(id)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// One retry on a broken connection: a retry after a lost reply finds
	// the key gone and answers ErrInvalid, so a ticket is never admitted
	// twice (at worst, once not at all).
	getdel := func() ([]byte, error) {
		return cl.Do(ctx, cl.B().Getdel().Key(s.key(id)).Build()).AsBytes()
	}
	b, err := getdel()
	if err != nil && !rueidis.IsRedisNil(err) && ctx.Err() == nil {
		b, err = getdel()
	}
	if rueidis.IsRedisNil(err) {
		s.misses.Add(1)
		return ticket.Claims{}, ticket.ErrInvalid
	}
	if err != nil {
		s.unavailable.Add(1)
		return ticket.Claims{}, ticket.ErrUnavailable
	}
	c, ok := decodeClaims(b)
	if !ok {
		// Not ours (another writer on the same key space): refuse.
		s.misses.Add(1)
		return ticket.Claims{}, ticket.ErrInvalid
	}
	s.redeemed.Add(1)
	return c, nil
}

// jump is Lamping and Veach's jump consistent hash: key → bucket in [0, n),
// moving only 1/n of the keys when a bucket is added.
func jump(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

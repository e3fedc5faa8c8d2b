package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/auth/ticket"
	ticketredis "github.com/turnstile-push/turnstile/auth/ticket/redis"
	brokerredis "github.com/turnstile-push/turnstile/engine/broker/redis"
)

// redisConfig is the part of the configuration for many nodes on Redis
// (DESIGN 1.6).
type redisConfig struct {
	Redis     string // -redis: comma list of redis:// or rediss:// URLs
	TicketKey string // -ticket-key: comma list of MAC keys, the first signs
}

func (c *config) redisFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Redis, "redis", "", "Redis for tickets, fan-out and history across nodes: redis://[user:pass@]host:port[/db] or rediss://…; a comma list shards over several servers; a Redis Cluster is detected")
	fs.StringVar(&c.TicketKey, "ticket-key", "", "with -redis: secret(s) of 32+ bytes that sign tickets, the same on every node; a comma list accepts older keys (the first signs) for rotation (prefer TURNSTILE_TICKET_KEY)")
}

// validateRedis checks -redis and -ticket-key without connecting.
func (c *config) validateRedis() []error {
	var errs []error
	if c.Redis == "" {
		if c.TicketKey != "" {
			errs = append(errs, errors.New("-ticket-key is set without -redis: the embedded ticket store needs no key"))
		}
		return errs
	}
	if _, err := redisOptions(c.Redis); err != nil {
		errs = append(errs, err)
	}
	if c.TicketKey == "" {
		errs = append(errs, errors.New("-redis needs -ticket-key (TURNSTILE_TICKET_KEY): 32+ random bytes shared by every node, so that a node refuses forged tickets without asking Redis (try: openssl rand -base64 48)"))
	} else if _, err := newSealer(c.TicketKey); err != nil {
		errs = append(errs, fmt.Errorf("-ticket-key: %v", err))
	}
	return errs
}

func newSealer(list string) (*ticket.Sealer, error) {
	keys, err := ticket.ParseKeys(list)
	if err != nil {
		return nil, err
	}
	return ticket.NewSealer(keys...)
}

// redisOptions parses the -redis list; every URL is redis:// or rediss://
// with a host, and an optional user:password and /db.
func redisOptions(list string) ([]rueidis.ClientOption, error) {
	var opts []rueidis.ClientOption
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return nil, fmt.Errorf("-redis %q: want redis://[user:pass@]host:port[/db] or rediss://…", redactURL(raw))
		}
		o, err := rueidis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("-redis %q: %v", redactURL(raw), err)
		}
		o.DisableCache = true // no client-side caching: every key is read once
		opts = append(opts, o)
	}
	if len(opts) == 0 {
		return nil, errors.New("-redis is empty: give at least one redis:// URL")
	}
	return opts, nil
}

// redact drops a URL's password, for error messages and logs.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// redisDeps is what -redis builds: the clients (one per shard, or one for
// a cluster), the ticket store, and the health probe.
type redisDeps struct {
	clients []rueidis.Client
	cluster bool
	tickets *ticketredis.Store
	broker  *brokerredis.Broker // set by newRedisBroker

	healthy  atomic.Bool
	lastErr  atomic.Pointer[string]
	probes   atomic.Uint64
	failures atomic.Uint64
	stop     context.CancelFunc
	done     chan struct{}
}

// ErrRedisUnavailable: a Redis shard did not answer the last probe.
var errRedisUnavailable = errors.New("redis unreachable")

// connectRedis connects to every -redis URL (a cluster's URLs are one
// client) and builds the ticket store.
func connectRedis(cfg *config) (*redisDeps, error) {
	opts, err := redisOptions(cfg.Redis)
	if err != nil {
		return nil, err
	}
	first, err := rueidis.NewClient(opts[0])
	if err != nil {
		return nil, fmt.Errorf("-redis %s: %v", redactURL(strings.Split(cfg.Redis, ",")[0]), err)
	}
	d := &redisDeps{done: make(chan struct{})}
	d.cluster = len(first.Nodes()) > 1 || isCluster(first)
	if d.cluster {
		// Every URL is a seed of the one cluster.
		first.Close()
		all := opts[0]
		for _, o := range opts[1:] {
			all.InitAddress = append(all.InitAddress, o.InitAddress...)
		}
		c, err := rueidis.NewClient(all)
		if err != nil {
			return nil, fmt.Errorf("-redis cluster: %v", err)
		}
		d.clients = []rueidis.Client{c}
	} else {
		d.clients = []rueidis.Client{first}
		for i, o := range opts[1:] {
			c, err := rueidis.NewClient(o)
			if err != nil {
				d.close()
				return nil, fmt.Errorf("-redis %s: %v", redactURL(strings.Split(cfg.Redis, ",")[i+1]), err)
			}
			d.clients = append(d.clients, c)
		}
	}
	sealer, err := newSealer(cfg.TicketKey)
	if err != nil {
		d.close()
		return nil, err
	}
	if d.tickets, err = ticketredis.New(ticketredis.Config{Shards: d.clients, Sealer: sealer}); err != nil {
		d.close()
		return nil, err
	}
	d.healthy.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	go d.probe(ctx)
	return d, nil
}

func isCluster(c rueidis.Client) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Do(ctx, c.B().Info().Section("cluster").Build()).ToString()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// probe PINGs every shard twice a second, so /readyz answers from memory.
func (d *redisDeps) probe(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		ok := true
		for _, c := range d.clients {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := c.Do(pctx, c.B().Ping().Build()).Error()
			cancel()
			d.probes.Add(1)
			if err != nil && ctx.Err() == nil {
				ok = false
				d.failures.Add(1)
				msg := err.Error()
				d.lastErr.Store(&msg)
			}
		}
		d.healthy.Store(ok)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// health is nil when every shard answered the last probe. Safe for
// concurrent use.
func (d *redisDeps) health() error {
	if d == nil {
		return nil
	}
	if !d.healthy.Load() {
		return errRedisUnavailable
	}
	return nil
}

func (d *redisDeps) close() {
	if d == nil {
		return
	}
	if d.stop != nil {
		d.stop()
		<-d.done
	}
	for _, c := range d.clients {
		c.Close()
	}
}

// setupRedis connects -redis, if given, and returns the ticket store to
// use: Redis's, or the embedded Map.
func (s *server) setupRedis() (ticket.Store, error) {
	if s.cfg.Redis == "" {
		return s.store, nil
	}
	d, err := connectRedis(s.cfg)
	if err != nil {
		return nil, err
	}
	s.redis = d
	s.log.Info("redis engine", "shards", len(d.clients), "cluster", d.cluster)
	return d.tickets, nil
}

// redisHealth is nil without -redis, or when Redis answers and this node's
// pub/sub canary arrives.
func (s *server) redisHealth() error {
	if s.redis == nil {
		return nil
	}
	if err := s.redis.health(); err != nil {
		return err
	}
	return s.redisBrokerHealth()
}

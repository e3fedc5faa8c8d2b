package redis

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// shard is one Redis server's pub/sub side: a dedicated connection
// subscribed to this node's channels on that server, re-established when
// it breaks, and a dispatcher that delivers in offset order.
type shard struct {
	b      *Broker
	index  int
	client rueidis.Client
	canary string // this node's canary channel

	mu       sync.Mutex
	dc       rueidis.DedicatedClient // nil while disconnected
	channels map[string]string       // pub/sub channel → broker channel, local subscriptions
	// receivers: with Config.Sharded, the cancel of each channel's SSUBSCRIBE.
	receivers map[string]context.CancelFunc
	last      map[string]broker.Position

	queue      chan rueidis.PubSubMessage
	resync     chan struct{}
	ready      chan struct{} // closed once first subscribed
	readyOnce  sync.Once
	lastCanary atomic.Int64 // unix nanos of the last canary received
}

func newShard(b *Broker, i int, c rueidis.Client) *shard {
	s := &shard{
		b: b, index: i, client: c,
		canary:    b.cfg.Prefix + "canary:" + b.node,
		channels:  map[string]string{},
		receivers: map[string]context.CancelFunc{},
		last:      map[string]broker.Position{},
		queue:     make(chan rueidis.PubSubMessage, 1<<14),
		resync:    make(chan struct{}, 1),
		ready:     make(chan struct{}),
	}
	s.lastCanary.Store(time.Now().UnixNano())
	return s
}

// run keeps the dedicated pub/sub connection up: connect, subscribe to
// everything, wait for it to break, back off, again.
func (s *shard) run() {
	defer s.b.wg.Done()
	backoff := 50 * time.Millisecond
	first := true
	for s.b.ctx.Err() == nil {
		dc, cancel := s.client.Dedicate()
		wait := dc.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(m rueidis.PubSubMessage) {
				select {
				case s.queue <- m:
				case <-s.b.ctx.Done():
				}
			},
		})
		chans := s.snapshot()
		ctx, cancelDo := context.WithTimeout(s.b.ctx, s.b.cfg.Timeout)
		err := dc.Do(ctx, dc.B().Subscribe().Channel(chans...).Build()).Error()
		cancelDo()
		if err != nil {
			cancel()
			select {
			case <-time.After(backoff):
			case <-s.b.ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.mu.Lock()
		s.dc = dc
		s.mu.Unlock()
		if !first {
			s.b.stats.reconnects.Add(1)
			s.b.cfg.Logger.Info("redis pub/sub re-established", "shard", s.index, "channels", len(chans)-1)
			select {
			case s.resync <- struct{}{}:
			default:
			}
		}
		first = false
		s.readyOnce.Do(func() { close(s.ready) })
		select {
		case err = <-wait:
		case <-s.b.ctx.Done():
		}
		s.mu.Lock()
		s.dc = nil
		s.mu.Unlock()
		cancel()
		if s.b.ctx.Err() == nil {
			s.b.cfg.Logger.Warn("redis pub/sub lost", "shard", s.index, "err", err)
		}
	}
}

// snapshot is the pub/sub channels to subscribe on (re)connect: the
// canary, the control channel on the first shard, and every local one.
func (s *shard) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	chans := []string{s.canary}
	if s.index == 0 {
		chans = append(chans, s.b.ctl)
	}
	if !s.b.cfg.Sharded {
		for ps := range s.channels {
			chans = append(chans, ps)
		}
	}
	return chans
}

func (s *shard) close() {
	s.mu.Lock()
	dc := s.dc
	s.mu.Unlock()
	if dc != nil {
		dc.Close()
	}
}

// Subscribe makes this node receive the channel's publications; it returns
// once Redis confirmed the subscription. Safe for concurrent use; blocks
// on Redis.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	s := b.shardFor(channel)
	_, _, ps := b.keys(channel)
	// The position before the subscription: it seeds the channel's last
	// delivered position, so that a gap (a publication this node's pub/sub
	// missed, e.g. while it reconnects after an outage) is filled from
	// history even for a channel that had no message here yet. Read before
	// subscribing, it can only be behind what the engine reads after.
	seed, err := b.Position(ctx, channel)
	if err != nil {
		return err
	}
	if b.cfg.Sharded {
		if err := b.subscribeSharded(ctx, s, ps, channel); err != nil {
			return err
		}
		s.seed(channel, seed)
		return nil
	}
	s.mu.Lock()
	s.channels[ps] = channel
	dc := s.dc
	s.mu.Unlock()
	if dc == nil {
		s.forget(ps, channel)
		return broker.ErrUnavailable
	}
	if _, err := b.do(ctx, func(ctx context.Context) rueidis.RedisResult {
		return dc.Do(ctx, dc.B().Subscribe().Channel(ps).Build())
	}); err != nil {
		s.forget(ps, channel)
		return err
	}
	s.seed(channel, seed)
	return nil
}

// Unsubscribe stops this node's subscription. Safe for concurrent use;
// blocks on Redis.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	s := b.shardFor(channel)
	_, _, ps := b.keys(channel)
	if b.cfg.Sharded {
		s.stopSharded(ps, channel)
		return nil
	}
	s.mu.Lock()
	dc := s.dc
	s.mu.Unlock()
	s.forget(ps, channel)
	if dc == nil {
		return nil // not subscribed on any connection: nothing to undo
	}
	_, err := b.do(ctx, func(ctx context.Context) rueidis.RedisResult {
		return dc.Do(ctx, dc.B().Unsubscribe().Channel(ps).Build())
	})
	return err
}

func (s *shard) forget(ps, channel string) {
	s.mu.Lock()
	delete(s.channels, ps)
	delete(s.last, channel)
	s.mu.Unlock()
}

// dispatch delivers the shard's messages one at a time, so that one
// channel's publications reach the Handler in order and never concurrently.
func (s *shard) dispatch() {
	defer s.b.wg.Done()
	h := s.b.handler.Load().h
	for {
		select {
		case <-s.b.ctx.Done():
			return
		case <-s.resync:
			s.catchUp(h)
		case m := <-s.queue:
			s.handle(h, m)
		}
	}
}

func (s *shard) handle(h broker.Handler, m rueidis.PubSubMessage) {
	b := s.b
	if len(m.Message) > b.cfg.MaxMessageBytes {
		s.drop("oversized")
		return
	}
	switch m.Channel {
	case s.canary:
		if sent, err := strconv.ParseInt(m.Message, 10, 64); err == nil && sent > 0 {
			s.lastCanary.Store(time.Now().UnixNano())
			return
		}
		s.drop("canary")
		return
	case b.ctl:
		if len(m.Message) < 2 {
			s.drop("control")
			return
		}
		arg := m.Message[1:]
		switch m.Message[0] {
		case 'b':
			if json.Valid([]byte(arg)) {
				h.HandleBroadcast([]byte(arg))
				return
			}
		case 'u':
			h.HandleDisconnect(broker.Disconnect{User: arg})
			return
		case 'U':
			if origin, user, ok := strings.Cut(arg, "\n"); ok && origin != "" && user != "" {
				h.HandleDisconnect(broker.Disconnect{User: user, Origin: origin})
				return
			}
		case 'c':
			h.HandleDisconnect(broker.Disconnect{Conn: arg})
			return
		}
		s.drop("control")
		return
	}
	s.mu.Lock()
	channel, ok := s.channels[m.Channel]
	s.mu.Unlock()
	if !ok {
		return // unsubscribed meanwhile
	}
	p, ok := parsePublication(channel, m.Message)
	if !ok {
		s.drop("publication")
		return
	}
	s.deliver(h, p)
}

// deliver hands p to the Handler after filling any gap before it from
// history, and drops what was already delivered.
func (s *shard) deliver(h broker.Handler, p broker.Publication) {
	s.mu.Lock()
	last, known := s.last[p.Channel]
	s.mu.Unlock()
	switch {
	case known && last.Epoch == p.Epoch:
		if p.Offset <= last.Offset {
			return // a duplicate: already delivered (by a gap fill)
		}
		if p.Offset > last.Offset+1 {
			s.fill(h, p.Channel, last, p.Offset-1)
		}
	case known && p.Offset > 1:
		// A new epoch (Redis lost the channel) whose first messages this
		// node missed: they were all published after its last delivery.
		s.fill(h, p.Channel, broker.Position{Epoch: p.Epoch}, p.Offset-1)
	}
	s.setLast(p.Channel, broker.Position{Offset: p.Offset, Epoch: p.Epoch})
	h.HandlePublication(p)
}

// fill delivers the publications after last up to upTo from history; a
// gap history cannot fill is counted (the clients find it by offset and
// recover or are told recovered:false).
func (s *shard) fill(h broker.Handler, channel string, last broker.Position, upTo uint64) {
	var pubs []broker.Publication
	err := s.retry(func() (err error) {
		pubs, _, err = s.b.History(s.b.ctx, channel, last)
		return err
	})
	if err != nil {
		s.b.stats.gapsLost.Add(1)
		return
	}
	for _, q := range pubs {
		if q.Offset > upTo {
			break
		}
		s.b.stats.gapsFilled.Add(1)
		s.setLast(channel, broker.Position{Offset: q.Offset, Epoch: q.Epoch})
		h.HandlePublication(q)
	}
}

// catchUp runs after a reconnect: every channel with a known position gets
// what was published while the subscription was down.
func (s *shard) catchUp(h broker.Handler) {
	s.mu.Lock()
	todo := make(map[string]broker.Position, len(s.last))
	for ch, p := range s.last {
		todo[ch] = p
	}
	s.mu.Unlock()
	for ch, last := range todo {
		var pos broker.Position
		if err := s.retry(func() (err error) {
			pos, err = s.b.Position(s.b.ctx, ch)
			return err
		}); err != nil {
			s.b.stats.gapsLost.Add(1)
			continue
		}
		if pos.Epoch != last.Epoch {
			// Redis lost the channel meanwhile: everything of the new
			// epoch came after what this node delivered.
			last = broker.Position{Epoch: pos.Epoch}
		}
		if pos.Offset > last.Offset {
			s.fill(h, ch, last, pos.Offset)
		}
	}
}

// retry runs f until it succeeds, fails with anything but ErrUnavailable,
// or about 2 s pass: right after a reconnect the command connection may
// still be the broken one.
func (s *shard) retry(f func() error) error {
	var err error
	for range 40 {
		if err = f(); err == nil || !errors.Is(err, broker.ErrUnavailable) || s.b.ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-s.b.ctx.Done():
			return err
		}
	}
	return err
}

// seed sets the channel's last delivered position unless a publication
// already did.
func (s *shard) seed(channel string, p broker.Position) {
	s.mu.Lock()
	if _, known := s.last[channel]; !known {
		if _, subscribed := s.channels[s.b.cfg.Prefix+"{"+channel+"}:p"]; subscribed {
			s.last[channel] = p
		}
	}
	s.mu.Unlock()
}

func (s *shard) setLast(channel string, p broker.Position) {
	s.mu.Lock()
	if _, subscribed := s.channels[s.b.cfg.Prefix+"{"+channel+"}:p"]; subscribed {
		s.last[channel] = p
	}
	s.mu.Unlock()
}

func (s *shard) drop(kind string) {
	s.b.stats.dropped.Add(1)
	s.b.cfg.Logger.Debug("redis pub/sub message dropped", "kind", kind, "shard", s.index)
}

// parsePublication reads "<offset>:<epoch>:<data>"; data must be one JSON
// value (a message from another writer on the same Redis may be anything).
func parsePublication(channel, msg string) (broker.Publication, bool) {
	o, rest, ok := strings.Cut(msg, ":")
	if !ok {
		return broker.Publication{}, false
	}
	e, data, ok := strings.Cut(rest, ":")
	off, err := strconv.ParseUint(o, 10, 64)
	if !ok || err != nil || off == 0 || e == "" || !json.Valid([]byte(data)) {
		return broker.Publication{}, false
	}
	return broker.Publication{Channel: channel, Offset: off, Epoch: e, Data: []byte(data)}, true
}

// canary publishes the node's canary on every shard each interval; the
// shard's dispatcher records its arrival (Health, Stats.CanaryLag).
func (b *Broker) canary() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.CanaryInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		now := strconv.FormatInt(time.Now().UnixNano(), 10)
		for _, s := range b.shards {
			c := s.client
			_, _ = b.do(b.ctx, func(ctx context.Context) rueidis.RedisResult {
				return c.Do(ctx, c.B().Publish().Channel(s.canary).Message(now).Build())
			})
		}
	}
}

package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// Sharded pub/sub (Config.Sharded, a Redis Cluster): each subscribed
// channel has its own SSUBSCRIBE, which rueidis routes to the master of
// the channel's slot and re-establishes after a reconnect or a slot
// migration; every (re)subscription after the first triggers a catch-up
// from history, as for the classic connection.

// subscribeSharded starts the channel's SSUBSCRIBE and returns once Redis
// confirmed it.
func (b *Broker) subscribeSharded(ctx context.Context, s *shard, ps, channel string) error {
	rctx, cancel := context.WithCancel(b.ctx)
	confirmed := make(chan struct{})
	failed := make(chan error, 1)
	var once sync.Once
	hooked := rueidis.WithOnSubscriptionHook(rctx, func(sub rueidis.PubSubSubscription) {
		if sub.Kind != "ssubscribe" {
			return
		}
		first := false
		once.Do(func() { first = true; close(confirmed) })
		if !first {
			b.stats.reconnects.Add(1)
			select {
			case s.resync <- struct{}{}:
			default:
			}
		}
	})
	hooked = rueidis.WithOnReceiveReturnHook(hooked, func(err error, c rueidis.CommandClient) error {
		if errors.Is(err, context.Canceled) {
			uctx, ucancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
			defer ucancel()
			_ = c.Do(uctx, c.B().Sunsubscribe().Channel(ps).Build()).Error()
		}
		return err
	})
	s.mu.Lock()
	if old := s.receivers[ps]; old != nil {
		old() // a subscription of this channel already runs: replace it
	}
	s.channels[ps] = channel
	s.receivers[ps] = cancel
	s.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for rctx.Err() == nil {
			err := s.client.Receive(hooked, s.client.B().Ssubscribe().Channel(ps).Build(), func(m rueidis.PubSubMessage) {
				select {
				case s.queue <- m:
				case <-rctx.Done():
				}
			})
			if rctx.Err() != nil {
				return
			}
			select {
			case failed <- err:
			default:
			}
			select { // nil: the server unsubscribed us (slot moved): again
			case <-time.After(100 * time.Millisecond):
			case <-rctx.Done():
				return
			}
		}
	}()
	timeout := time.NewTimer(b.cfg.Timeout)
	defer timeout.Stop()
	select {
	case <-confirmed:
		return nil
	case <-failed:
	case <-timeout.C:
	case <-ctx.Done():
	}
	s.stopSharded(ps, channel)
	b.stats.errors.Add(1)
	return broker.ErrUnavailable
}

// stopSharded ends the channel's SSUBSCRIBE (its receive-return hook sends
// SUNSUBSCRIBE on the same connection).
func (s *shard) stopSharded(ps, channel string) {
	s.mu.Lock()
	cancel := s.receivers[ps]
	delete(s.receivers, ps)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.forget(ps, channel)
}

package broker

import "context"

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
// state is freed at once (its next life keeps the epoch if it never had a
// message, else gets a new one: epoch.go). Errors: ErrNotSubscribed,
// ErrNotStarted, ErrClosed, ErrEmptyChannel. Safe for concurrent use.
func (m *Memory) Unsubscribe(ctx context.Context, channel string) error {
	if _, err := m.ready(); err != nil {
		return err
	}
	if channel == "" {
		return ErrEmptyChannel
	}
	now := m.nanos()
	s := m.shardOf(channel)
	c := s.lookup(channel)
	if c == nil {
		return ErrNotSubscribed
	}
	c.mu.Lock()
	if c.dead || c.subs == 0 {
		c.mu.Unlock()
		return ErrNotSubscribed
	}
	c.subs--
	m.trimExpired(c, now)
	m.keys.Add(-int64(c.keys.expire(now)))
	idle := c.idle()
	c.mu.Unlock()
	if idle {
		// The shard's write lock only to free, in shard-then-channel
		// order; the channel may have been used again meanwhile.
		s.mu.Lock()
		c.mu.Lock()
		if !c.dead && c.idle() {
			m.free(s, c)
		}
		c.mu.Unlock()
		s.mu.Unlock()
	}
	return nil
}

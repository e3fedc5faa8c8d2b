package broker

import "context"

// Subscribe makes HandlePublication receive the channel's publications
// from the next offset on. Calls are counted: the channel stays subscribed
// until as many Unsubscribe calls have come, so a late Unsubscribe racing
// a new Subscribe cannot silence the channel. A channel without state
// keeps none for its subscriptions alone unless its name is lost (its
// epoch is then unique to the state, which must hold it): the count waits
// in the shard until a publish creates the state. Errors: ErrNotStarted,
// ErrClosed, ErrEmptyChannel. Safe for concurrent use; it never blocks
// but on the channel's and its shard's short critical sections.
func (m *Memory) Subscribe(ctx context.Context, channel string) error {
	if _, err := m.ready(); err != nil {
		return err
	}
	if channel == "" {
		return ErrEmptyChannel
	}
	s := m.shardOf(channel)
	for {
		if c := s.lookup(channel); c != nil {
			c.mu.Lock()
			if !c.dead {
				c.subs++
				c.mu.Unlock()
				return nil
			}
			c.mu.Unlock()
			continue // freed between lookup and lock: look again
		}
		s.mu.Lock()
		if s.chans[channel] != nil { // created meanwhile
			s.mu.Unlock()
			continue
		}
		if !m.lost.has(channel) {
			s.addVacant(channel, 1)
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		c := m.lockChannel(channel)
		c.subs++
		c.mu.Unlock()
		return nil
	}
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
		s.mu.Lock()
		if s.chans[channel] != nil { // created meanwhile: its state holds the count
			s.mu.Unlock()
			return m.Unsubscribe(ctx, channel)
		}
		defer s.mu.Unlock()
		if s.vacant[channel] == 0 {
			return ErrNotSubscribed
		}
		s.addVacant(channel, -1)
		return nil
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return m.Unsubscribe(ctx, channel) // freed after the lookup
	}
	if c.subs == 0 {
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

// addVacant changes the subscription count of a channel without state by
// delta, dropping the entry at 0; s.mu is held for writing. The map is
// rebuilt smaller by the sweep once most of a burst's entries are gone.
func (s *shard) addVacant(channel string, delta int32) {
	n := s.vacant[channel] + delta
	if n == 0 {
		delete(s.vacant, channel)
		return
	}
	s.vacant[channel] = n
	s.vacantPeak = max(s.vacantPeak, len(s.vacant))
}

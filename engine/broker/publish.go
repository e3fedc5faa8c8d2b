package broker

import "context"

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
	c.fifo.push(&m.seq, c, off)
	// Counted after it is queued: bytes over the limit are always in some
	// eviction queue, so an evictor that finds every queue empty may stop.
	m.bytes.Add(delta)
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

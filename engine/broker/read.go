package broker

import "context"

// Position returns the channel's last offset and epoch. A channel without
// state answers offset 0 and the epoch its next life will have (epoch.go).
// Errors: ErrNotStarted, ErrClosed, ErrEmptyChannel. Safe for concurrent
// use.
func (m *Memory) Position(ctx context.Context, channel string) (Position, error) {
	if _, err := m.ready(); err != nil {
		return Position{}, err
	}
	if channel == "" {
		return Position{}, ErrEmptyChannel
	}
	c := m.shardOf(channel).lookup(channel)
	if c == nil {
		return m.vacant(channel), nil
	}
	c.mu.Lock()
	p := Position{Offset: c.top, Epoch: c.epoch}
	c.mu.Unlock()
	return p, nil
}

// History returns every publication after since, in offset order, and the
// current position; since.Offset equal to the top (same epoch) gives none
// and a nil error. If since cannot be served completely (another epoch,
// an offset past the top, or messages after it trimmed by size, age or
// max bytes) it returns ErrUnrecoverable, the current position and no
// publications. A channel without state serves only (0, its epoch), with
// nothing. The publications share their Data with the history
// (immutable). Errors also: ErrNotStarted, ErrClosed, ErrEmptyChannel.
// Safe for concurrent use.
func (m *Memory) History(ctx context.Context, channel string, since Position) ([]Publication, Position, error) {
	if _, err := m.ready(); err != nil {
		return nil, Position{}, err
	}
	if channel == "" {
		return nil, Position{}, ErrEmptyChannel
	}
	c := m.shardOf(channel).lookup(channel)
	if c == nil {
		return m.vacantHistory(channel, since)
	}
	now := m.nanos()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead { // freed after the lookup
		return m.vacantHistory(channel, since)
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

// vacant is the position of a channel without state: offset 0 and the
// epoch its next life would have, or, if that epoch is unique, one that no
// life will have (no state to keep it in).
func (m *Memory) vacant(channel string) Position {
	return Position{Epoch: m.epochFor(channel)}
}

// vacantHistory serves since on a channel without state: only its own
// position, (0, zero epoch), is recoverable, with nothing missed.
func (m *Memory) vacantHistory(channel string, since Position) ([]Publication, Position, error) {
	pos := m.vacant(channel)
	if since == pos {
		return nil, pos, nil
	}
	return nil, pos, ErrUnrecoverable
}

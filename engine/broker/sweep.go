package broker

import "time"

// run is the background sweep, started by Start and stopped by Close. It
// is what frees a channel nobody touches any more: history and keys also
// expire lazily when their channel is used, but an untouched channel
// would otherwise keep them (and its state) forever.
func (m *Memory) run() {
	defer m.wg.Done()
	t := time.NewTicker(m.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep drops expired history and keys of every channel and frees the
// idle ones, one shard at a time (a shard's publishers wait for at most
// that shard's pass).
func (m *Memory) sweep() {
	now := m.nanos()
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, c := range s.chans {
			c.mu.Lock()
			m.trimExpired(c, now)
			m.keys.Add(-int64(c.keys.expire(now)))
			if c.idle() {
				m.free(s, c)
			}
			c.mu.Unlock()
		}
		s.mu.Unlock()
	}
	for i := range m.fifos {
		m.fifos[i].tidy()
	}
}

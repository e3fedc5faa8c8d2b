package broker

import "time"

// run is the broker's one background goroutine, started by Start and
// stopped by Close: it advances the coarse clock every tick and sweeps
// every SweepInterval. The sweep is what frees a channel nobody touches
// any more: history and keys also expire lazily when their channel is
// used, but an untouched channel would otherwise keep them (and its
// state) forever. With a test clock there is no coarse clock to advance.
func (m *Memory) run() {
	defer m.wg.Done()
	tick := m.tick
	if m.testNow != nil || tick > m.sweepEvery {
		tick = m.sweepEvery
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-m.done:
			return
		case now := <-t.C:
			m.updateClock()
			if now.Sub(lastSweep) >= m.sweepEvery-tick/2 {
				lastSweep = now
				m.sweep()
			}
		}
	}
}

// sweep drops expired history and keys of every channel and frees the
// idle ones, then tidies the eviction queues. Each shard is trimmed under
// its read lock, which publishers share, and write-locked only to remove
// the channels found idle. Safe to run concurrently with everything
// (tests call it directly).
func (m *Memory) sweep() {
	now := m.nanos()
	var idle []*channel
	for i := range m.shards {
		s := &m.shards[i]
		idle = idle[:0]
		s.mu.RLock()
		for _, c := range s.chans {
			c.mu.Lock()
			m.trimExpired(c, now)
			m.keys.Add(-int64(c.keys.expire(now)))
			if c.idle() {
				idle = append(idle, c)
			}
			c.mu.Unlock()
		}
		shrink := s.peak >= 64 && len(s.chans)-len(idle) <= s.peak/4 ||
			s.vacantPeak >= 64 && len(s.vacant) <= s.vacantPeak/4
		s.mu.RUnlock()
		if len(idle) == 0 && !shrink {
			continue
		}
		s.mu.Lock()
		for _, c := range idle {
			c.mu.Lock()
			// Used again since (or already freed): keep it.
			if !c.dead && c.idle() {
				m.free(s, c)
			}
			c.mu.Unlock()
		}
		if s.peak >= 64 && len(s.chans) <= s.peak/4 {
			// Most channels of a burst are gone: a map sized for the rest.
			nm := make(map[string]*channel, len(s.chans))
			for name, c := range s.chans {
				nm[name] = c
			}
			s.chans, s.peak = nm, len(nm)
		}
		if s.vacantPeak >= 64 && len(s.vacant) <= s.vacantPeak/4 {
			nv := make(map[string]int32, len(s.vacant))
			for name, n := range s.vacant {
				nv[name] = n
			}
			s.vacant, s.vacantPeak = nv, len(nv)
		}
		s.mu.Unlock()
	}
	clear(idle)
	for i := range m.fifos {
		m.fifos[i].tidy()
	}
}

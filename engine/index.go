package engine

// The per-loop index of subscriptions: channel → its subscribers on this
// loop, connection → its channels. Both sides are slices of small values
// that know each other's index, so adding and removing a subscription is
// O(1) and one (connection, channel) pair costs a chanSub (24 bytes) and a
// connSub (16 bytes) plus slice slack. Touched only on the loop.

// loopChan is one channel's subscribers on one loop.
type loopChan struct {
	name    string
	route   *route // the node's routing entry; valid while subs is not empty
	epoch   string // the epoch the subscribers' offsets belong to
	subs    []chanSub
	pending int    // subscriptions in subs still waiting for their position
	last    uint64 // offset of the newest publication delivered on this loop
}

// chanSub is a subscription as its channel sees it. Publications of a
// channel reach a loop in offset order, so a live subscription needs only
// the offset it started after: delivery reads it and writes nothing.
type chanSub struct {
	c       *Conn
	from    uint64 // publications after this offset are delivered
	ci      int32  // index in c.subs
	pending bool   // waiting for its position: publications are buffered
}

// connSub is a subscription as its connection sees it.
type connSub struct {
	lc *loopChan
	si int32 // index in lc.subs
}

// pendKey names a subscription waiting for the broker.
type pendKey struct {
	c  *Conn
	lc *loopChan
}

// addSub subscribes c to channel on this loop, pending (publications are
// buffered until the position is known), and returns its loopChan.
func (l *loop) addSub(c *Conn, channel string) *loopChan {
	lc := l.chans[channel]
	if lc == nil {
		lc = &loopChan{name: channel}
		lc.route = l.srv.hub.hold(channel, l.index)
		l.chans[channel] = lc
	}
	lc.subs = append(lc.subs, chanSub{c: c, ci: int32(len(c.subs)), pending: true})
	lc.pending++
	c.subs = append(c.subs, connSub{lc: lc, si: int32(len(lc.subs) - 1)})
	lc.route.subs.Add(1)
	l.counters.subscriptions.Add(1)
	return lc
}

// findSub returns the index in c.subs of c's subscription of channel, or -1.
func (c *Conn) findSub(channel []byte) int {
	for i := range c.subs {
		if c.subs[i].lc.name == string(channel) {
			return i
		}
	}
	return -1
}

// removeSub takes c's i-th subscription out of both sides of the index and
// reports whether it was pending. When the channel has no subscriber left
// on this loop, the loop lets go of its route.
func (l *loop) removeSub(c *Conn, i int) (lc *loopChan, wasPending bool) {
	cs := c.subs[i]
	lc = cs.lc
	si := int(cs.si)
	wasPending = lc.subs[si].pending
	if wasPending {
		lc.pending--
	}
	// Swap-remove on the channel's side, fixing the moved one's back index.
	last := len(lc.subs) - 1
	if si != last {
		moved := lc.subs[last]
		lc.subs[si] = moved
		moved.c.subs[moved.ci].si = int32(si)
	}
	lc.subs[last] = chanSub{}
	lc.subs = lc.subs[:last]
	// And on the connection's side.
	lastC := len(c.subs) - 1
	if i != lastC {
		moved := c.subs[lastC]
		c.subs[i] = moved
		moved.lc.subs[moved.si].ci = int32(i)
	}
	c.subs[lastC] = connSub{}
	c.subs = c.subs[:lastC]

	lc.route.subs.Add(-1)
	l.counters.subscriptions.Add(-1)
	if len(lc.subs) == 0 {
		l.srv.hub.unhold(lc.name, l.index)
		delete(l.chans, lc.name)
		lc.route = nil
	} else if cap(lc.subs) > 64 && len(lc.subs) < cap(lc.subs)/4 {
		lc.subs = append([]chanSub(nil), lc.subs...)
	}
	return lc, wasPending
}

// removeAllSubs drops every subscription of c (from OnClose) and releases
// the node's broker subscriptions they held: at once with an in-process
// broker, else off the loop, all in one goroutine.
func (l *loop) removeAllSubs(c *Conn) {
	var release []string
	inProcess := l.srv.hub.inProcess
	for len(c.subs) > 0 {
		lc, pending := l.removeSub(c, len(c.subs)-1)
		if pending {
			// Its acquire is in flight: the completion releases it.
			if ps := l.pend[pendKey{c, lc}]; ps != nil {
				ps.cancelled = true
				delete(l.pend, pendKey{c, lc})
			}
			continue
		}
		if inProcess {
			l.srv.hub.releaseInProcess(lc.name)
			continue
		}
		release = append(release, lc.name)
	}
	c.subs = nil
	if len(release) > 0 {
		l.release(release...)
	}
}

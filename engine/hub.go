package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// hub is the node's side of the broker: it receives what the broker
// delivers (broker.Handler) and hands it to the event loops that hold a
// subscriber, and it keeps the node subscribed to exactly the channels
// some local connection is subscribed to.
//
// The publish path (HandlePublication) reads routes without a lock. Every
// broker call (Subscribe, Unsubscribe, Position, History) runs on a
// goroutine of its own, never on an event loop, unless the broker is
// broker.InProcess: then the loops call it directly and it counts the
// subscriptions itself (nodeSubs stays empty).
type hub struct {
	srv       *Server
	broker    broker.Broker
	inProcess bool

	// routes: channel → which loops hold a subscriber of it. An entry
	// exists exactly while some loop holds one.
	routes *xsync.Map[string, *route]

	// nodeSubs: channel → how many local subscriptions (pending or live)
	// need this node subscribed at the broker. Touched off the loops only.
	nodeMu   sync.Mutex
	nodeSubs map[string]*nodeSub
}

// route is one channel's node-level routing entry.
type route struct {
	mask atomic.Uint64 // bit i%64: loop i holds a subscriber
	subs atomic.Int64  // local subscriptions, for "recipients"
	// holders counts the loops per mask bit, needed only with more than
	// 64 loops (else a bit is one loop): allocated then, so that a route —
	// one per personal channel, so one per user — stays 16 bytes.
	// Only inside routes.Compute.
	holders *[64]int32
}

// nodeSub is one channel's broker subscription on this node.
type nodeSub struct {
	pins int        // goroutines using this entry; guarded by hub.nodeMu
	mu   sync.Mutex // serialises refs changes and the broker calls they make
	refs int
}

func newHub(s *Server, b broker.Broker) *hub {
	ip, _ := b.(broker.InProcess)
	return &hub{srv: s, broker: b, inProcess: ip != nil && ip.InProcess(),
		routes: xsync.NewMap[string, *route](), nodeSubs: make(map[string]*nodeSub)}
}

func loopBit(index int) uint64 { return 1 << (uint(index) % 64) }

// hold marks loop index as holding a subscriber of channel and returns the
// route, which stays valid while the loop holds one. Called on the loop
// only when its first subscriber of channel arrives; the Compute locks one
// map bucket for a few instructions.
func (h *hub) hold(channel string, index int) *route {
	r, _ := h.routes.Compute(channel, func(r *route, loaded bool) (*route, xsync.ComputeOp) {
		if !loaded {
			r = &route{}
		}
		if h.srv.cfg.Loops <= 64 {
			r.mask.Or(loopBit(index))
			return r, xsync.UpdateOp
		}
		if r.holders == nil {
			r.holders = new([64]int32)
		}
		b := index % 64
		if r.holders[b]++; r.holders[b] == 1 {
			r.mask.Or(loopBit(index))
		}
		return r, xsync.UpdateOp
	})
	return r
}

// unhold undoes hold when the loop's last subscriber of channel leaves.
func (h *hub) unhold(channel string, index int) {
	h.routes.Compute(channel, func(r *route, loaded bool) (*route, xsync.ComputeOp) {
		if !loaded {
			return r, xsync.CancelOp
		}
		if r.holders == nil {
			r.mask.And(^loopBit(index))
		} else if b := index % 64; r.holders[b] > 0 {
			if r.holders[b]--; r.holders[b] == 0 {
				r.mask.And(^loopBit(index))
			}
		}
		if r.mask.Load() == 0 {
			return r, xsync.DeleteOp
		}
		return r, xsync.UpdateOp
	})
}

// acquire counts one more local subscription of channel and, for the
// first, subscribes the node at the broker. When it returns nil, every
// publication of channel assigned from then on reaches HandlePublication.
// Off the loops only, unless the broker is in-process: it may wait on the
// broker and on other acquires of the same channel.
func (h *hub) acquire(ctx context.Context, channel string) error {
	if h.inProcess {
		return h.broker.Subscribe(ctx, channel)
	}
	ns := h.pin(channel)
	defer h.unpin(channel, ns)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.refs == 0 {
		if err := h.broker.Subscribe(ctx, channel); err != nil {
			return err
		}
	}
	ns.refs++
	return nil
}

// release undoes one successful acquire of each channel; the last one
// unsubscribes the node. Off the loops only, unless the broker is
// in-process (see loop.release).
func (h *hub) release(channels []string) {
	if h.inProcess {
		for _, ch := range channels {
			h.releaseInProcess(ch)
		}
		return
	}
	for _, ch := range channels {
		ns := h.pin(ch)
		ns.mu.Lock()
		if ns.refs == 0 { // never acquired (a test's index without a broker)
			ns.mu.Unlock()
			h.unpin(ch, ns)
			continue
		}
		if ns.refs--; ns.refs == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
			// A failed unsubscribe leaves deliveries that find no route:
			// they cost a map lookup each and are dropped.
			_ = h.broker.Unsubscribe(ctx, ch)
			cancel()
		}
		ns.mu.Unlock()
		h.unpin(ch, ns)
	}
}

// releaseInProcess is release of one channel for an in-process broker,
// which counts the subscriptions itself; on the loop.
func (h *hub) releaseInProcess(channel string) {
	_ = h.broker.Unsubscribe(context.Background(), channel)
}

func (h *hub) pin(channel string) *nodeSub {
	h.nodeMu.Lock()
	defer h.nodeMu.Unlock()
	ns := h.nodeSubs[channel]
	if ns == nil {
		ns = &nodeSub{}
		h.nodeSubs[channel] = ns
	}
	ns.pins++
	return ns
}

func (h *hub) unpin(channel string, ns *nodeSub) {
	h.nodeMu.Lock()
	defer h.nodeMu.Unlock()
	if ns.pins--; ns.pins == 0 {
		ns.mu.Lock() // no one else holds it: pins was the last reference
		idle := ns.refs == 0
		ns.mu.Unlock()
		if idle {
			delete(h.nodeSubs, channel)
		}
	}
}

// delivery is one publication on its way to one loop.
type delivery struct {
	channel string
	offset  uint64
	epoch   string
	frame   []byte  // encoded once for every loop
	z       *zframe // its compressed form, made once if wanted; nil: never
}

// HandlePublication runs p on each loop that holds a subscriber of its
// channel: one task per loop, the frame encoded once. Called by the
// broker, serially per channel, in offset order; it never blocks.
func (h *hub) HandlePublication(p broker.Publication) {
	r, ok := h.routes.Load(p.Channel)
	if !ok {
		return
	}
	mask := r.mask.Load()
	if mask == 0 {
		return
	}
	d := &delivery{channel: p.Channel, offset: p.Offset, epoch: p.Epoch,
		frame: encodeChannelMessage(p.Channel, p.Offset, p.Data)}
	d.z = h.srv.newZframe(len(d.frame))
	for _, l := range h.srv.loopList() {
		if mask&loopBit(l.index) != 0 {
			_ = l.el.Execute(context.Background(), l.deliverTask(d))
		}
	}
}

// HandleBroadcast writes data to every open connection: one task per loop.
// Called by the broker; it never blocks.
func (h *hub) HandleBroadcast(data []byte) {
	frame := encodeMessage(data)
	z := h.srv.newZframe(len(frame))
	for _, l := range h.srv.loopList() {
		_ = l.el.Execute(context.Background(), runnable(func(context.Context) error {
			l.broadcastZ(frame, z)
			return nil
		}))
	}
}

// HandleDisconnect closes the named connections on this node with 4001,
// unless this node asked for it (Server.Disconnect closed them already).
// Called by the broker; it never blocks.
func (h *hub) HandleDisconnect(d broker.Disconnect) {
	if d.Origin != "" && d.Origin == h.srv.nodeID {
		return
	}
	h.srv.disconnectLocal(d, nil, false)
}

// subscribers is how many local subscriptions channel has now.
func (h *hub) subscribers(channel string) int {
	if r, ok := h.routes.Load(channel); ok {
		return int(r.subs.Load())
	}
	return 0
}

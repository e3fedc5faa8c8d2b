package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/puzpuzpuz/xsync/v4"
)

const levelDebug = slog.LevelDebug

// Server is the WebSocket listener. Create it with New, then Start it.
type Server struct {
	cfg   Config
	log   *slog.Logger // nil: discard
	epoch time.Time    // the server clock's zero

	tick       time.Duration // how often each loop sweeps
	checkEvery time.Duration // how often each connection is checked for idleness

	closeLog closeLog
	quota    userQuota // nil map: MaxConnsPerUser off

	openConns    atomic.Int64
	deflateConns atomic.Int64 // open connections that negotiated permessage-deflate
	fds          atomic.Int64 // TCP connections held, against cfg.MaxFDs
	fdRefusedAt  atomic.Int64 // server clock of the last fd-budget refusal
	fdLog        logLimiter
	publishes    atomic.Uint64

	hub        *hub
	nodeID     string // random, so that connection ids are unique among nodes
	ownsBroker bool   // the engine made the broker (Config.Broker nil): it closes it

	loopsMu sync.Mutex              // serialises adding a loop (once per loop)
	loops   atomic.Pointer[[]*loop] // copy-on-write list, read without a lock

	started  atomic.Bool
	stopping atomic.Bool
	ready    atomic.Bool
	eng      gnet.Engine
	addr     net.Addr
	booted   chan struct{} // closed at the first tick: loops are accepting
	done     chan struct{} // closed when gnet.Run returns
	startRet chan struct{} // closed when Start returns, so Stop never races it
	runErr   error

	stopOnce sync.Once
	stopErr  error
}

// New validates cfg, applies defaults and returns a server that is not yet
// listening.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, epoch: time.Now(), nodeID: newNodeID(),
		booted: make(chan struct{}), done: make(chan struct{}), startRet: make(chan struct{})}
	b := cfg.Broker
	if b == nil {
		if b, err = defaultBroker(); err != nil {
			return nil, err
		}
		s.ownsBroker = true
	}
	s.hub = newHub(s, b)
	shortest := min(cfg.HandshakeTimeout, cfg.PingInterval, cfg.IdleTimeout)
	s.tick = min(max(shortest/4, 10*time.Millisecond), 250*time.Millisecond)
	s.checkEvery = max(min(cfg.PingInterval, cfg.IdleTimeout)/10, s.tick)
	s.closeLog.l = cfg.Logger
	if cfg.MaxConnsPerUser > 0 {
		s.quota.m = xsync.NewMap[string, int32]()
	}
	empty := []*loop{}
	s.loops.Store(&empty)
	return s, nil
}

// now is the server's monotonic clock in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

func (s *Server) loopList() []*loop { return *s.loops.Load() }

// loopFor returns the engine state of a gnet loop, creating it the first
// time the loop opens a connection.
func (s *Server) loopFor(el gnet.EventLoop) *loop {
	for _, l := range s.loopList() {
		if l.el == el {
			return l
		}
	}
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	old := s.loopList()
	for _, l := range old {
		if l.el == el {
			return l
		}
	}
	l := newLoop(s, el, len(old))
	next := append(append(make([]*loop, 0, len(old)+1), old...), l)
	s.loops.Store(&next)
	return l
}

// Start binds the listen address and starts the event loops. It returns
// once the server accepts connections, or the bind error (e.g. the port is
// in use). Call it once. Safe from any goroutine.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	defer close(s.startRet)
	if err := s.hub.broker.Start(s.hub); err != nil {
		close(s.done)
		return fmt.Errorf("engine: start broker: %w", err)
	}
	h := &handler{s: s}
	addr, err := resolveListenAddr(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("engine: listen on %s: %w", s.cfg.Addr, err)
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		// One listener per loop, so OnOpen runs after each accept: see fdbudget.go.
		gnet.WithReusePort(true),
		// A restart may bind while the last run's connections sit in TIME_WAIT.
		gnet.WithReuseAddr(true),
		gnet.WithLogger(newGnetLogger(s.log)),
	}
	if n := s.cfg.SendBufferBytes; n > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(n))
	}
	go func() {
		defer close(s.done)
		s.runErr = gnet.Run(h, "tcp://"+addr, opts...)
		if s.started.Load() && !s.stopping.Load() && s.log != nil {
			select {
			case <-s.booted: // it ran, then stopped on its own: /healthz says so
				s.log.Error("WebSocket event loops stopped unexpectedly", "err", s.runErr)
			default:
			}
		}
	}()
	select {
	case <-s.booted:
		s.ready.Store(true)
		return nil
	case <-s.done:
		if s.runErr == nil {
			s.runErr = ErrStopped
		}
		return fmt.Errorf("engine: listen on %s: %w", s.cfg.Addr, s.runErr)
	}
}

// Addr is the bound address (useful with port 0), or nil before Start.
// Safe from any goroutine after Start returned.
func (s *Server) Addr() net.Addr { return s.addr }

// Ready reports whether the server accepts connections and is not stopping.
// Safe from any goroutine.
func (s *Server) Ready() bool { return s.ready.Load() && !s.stopping.Load() && !s.Failed() }

// Failed reports whether the event loops stopped without Stop being
// called: the listener is gone and nothing will bring it back in this
// process. Safe from any goroutine.
func (s *Server) Failed() bool {
	select {
	case <-s.done:
		return !s.stopping.Load()
	default:
		return false
	}
}

// Stop stops accepting, sends close 1001 to every connection and waits until
// they close or ctx ends; then it closes what remains and stops the event
// loops. It returns ctx.Err() if connections had to be cut. Safe from any
// goroutine; if Start is still running, Stop waits for it to return first.
// Later calls return the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	if !s.started.Load() {
		return ErrNotStarted
	}
	select {
	case <-s.startRet:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	s.stopping.Store(true)
	select {
	case <-s.done:
		return nil
	default:
	}
	s.onEveryLoop(func(l *loop) { l.closeAll(false) })
	var err error
	for s.openConns.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.onEveryLoop(func(l *loop) { l.closeAll(true) })
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// gnet's Stop polls every half second; Run returns as soon as the loops
	// are down, so wait for that instead.
	go func() { _ = s.eng.Stop(stopCtx) }()
	select {
	case <-s.done:
	case <-stopCtx.Done():
	}
	s.ready.Store(false)
	if s.ownsBroker {
		_ = s.hub.broker.Close()
	}
	return err
}

// onEveryLoop runs f on every known loop and waits for all of them.
func (s *Server) onEveryLoop(f func(*loop)) {
	var wg sync.WaitGroup
	for _, l := range s.loopList() {
		wg.Add(1)
		task := func(context.Context) error {
			defer wg.Done()
			f(l)
			return nil
		}
		if l.el.Execute(context.Background(), runnable(task)) != nil {
			wg.Done()
		}
	}
	wg.Wait()
}

func runnable(f func(context.Context) error) gnet.Runnable { return gnet.RunnableFunc(f) }

// handler is the gnet.EventHandler; every method but OnBoot and OnTick runs
// on the event loop of the connection it is given.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.eng = eng
	addr, err := boundAddr(eng)
	if err != nil {
		return gnet.Shutdown
	}
	s.addr = addr
	return gnet.None
}

// boundAddr asks the kernel for the listener's address (port 0 resolved).
func boundAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}, nil
	case *syscall.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		return &net.TCPAddr{IP: ip, Port: a.Port}, nil
	}
	return nil, errors.New("engine: listener is not TCP")
}

func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	// While Stop drains, a new connection is still read, so that its
	// upgrade gets a complete 503 (OnBeforeUpgrade) rather than a reset:
	// closing before the request arrives would make the client's kernel
	// drop the response when the request meets the closed socket.
	if !s.admitSocket() {
		return s.refuseSocket(gc)
	}
	l := s.loopFor(gc.EventLoop())
	c := &Conn{gc: gc, loop: l, index: -1}
	gc.SetContext(c)
	l.pending = append(l.pending, deadline{c: c, at: s.now() + int64(s.cfg.HandshakeTimeout)})
	return nil, gnet.None
}

func (h *handler) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	l := c.loop
	switch c.phase {
	case phaseHandshake:
		action, done := l.handshake(c)
		if !done || action != gnet.None {
			return action
		}
		// Open now: what came with the upgrade request is frames.
		return l.readFrames(c)
	case phaseWelcome:
		return gnet.None // read once the welcome is out (finishSub)
	}
	return l.readFrames(c)
}

func (h *handler) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None
	}
	h.s.fds.Add(-1)
	if c.phase != phaseHandshake && c.phase != phaseClosed {
		c.loop.remove(c)
		h.s.openConns.Add(-1)
		if c.deflate {
			h.s.deflateConns.Add(-1)
		}
		if h.s.quota.m != nil {
			h.s.quota.give(c.loop.quota, c.User())
		}
		c.loop.counters.closes[c.closeReason].Add(1)
		h.s.closeLog.conn(c, c.closeReason)
	}
	c.phase = phaseClosed
	c.frag = nil
	gc.SetContext(nil)
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine: it only queues each loop's sweep.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	s := h.s
	select {
	case <-s.booted:
	default:
		close(s.booted)
	}
	for _, l := range s.loopList() {
		if l.sweepQueued.CompareAndSwap(false, true) {
			if l.el.Execute(context.Background(), l.sweepTask) != nil {
				l.sweepQueued.Store(false)
			}
		}
	}
	return s.tick, gnet.None
}

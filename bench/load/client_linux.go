//go:build linux

package load

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// connState is where a client connection is in its life.
type connState uint8

const (
	stConnecting connState = iota // TCP connect in progress
	stHandshake                   // upgrade request sent, waiting for the response
	stOpen                        // 101 received: WebSocket frames
	stClosed
)

// wsconn is one client connection, owned by its engine's goroutine.
type wsconn struct {
	fd      int
	state   connState
	start   int64     // Unix ns when the dial started
	stamp   int64     // scenario scratch: when the last echo was sent
	id      int       // the scenario's client this connection serves (storm)
	opened  bool      // reached stOpen
	welcome bool      // the first message (the welcome) arrived
	deflate bool      // the 101 accepted permessage-deflate
	frag    *fragment // a fragmented message being received
	in      []byte    // unparsed inbound bytes carried to the next read
	out     []byte    // outbound bytes the socket has not taken yet
}

// handler receives a connection's events; it runs on the engine goroutine.
type handler interface {
	onOpen(c *wsconn, now int64)
	onReject(c *wsconn, status int, now int64)
	onMessage(c *wsconn, op byte, payload []byte, rx received, now int64)
	// onFail reports a connection lost before or after opening, by an
	// error or by the server; it is not called for closes the client asks.
	onFail(c *wsconn, err error, now int64)
}

// engine multiplexes many client connections over one epoll instance, on
// one goroutine: the caller's. Nothing in it is safe for concurrent use.
type engine struct {
	epfd    int
	conns   []*wsconn // by fd
	events  []unix.EpollEvent
	rbuf    []byte
	dst     unix.SockaddrInet4
	sources []unix.SockaddrInet4
	nextSrc int
	host    string
	path    string
	h       handler
	mask    [4]byte
	live    int
	nodelay bool // disable Nagle: for scenarios that send frames after the handshake
	deflate bool // offer permessage-deflate (inflate.go)
	infl    inflater
}

func newEngine(wsAddr, path string, sources []netip.Addr, h handler) (*engine, error) {
	ap, err := netip.ParseAddrPort(wsAddr)
	if err != nil {
		return nil, err
	}
	if !ap.Addr().Unmap().Is4() {
		return nil, errIPv6Client
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	e := &engine{
		epfd:   epfd,
		events: make([]unix.EpollEvent, 512),
		rbuf:   make([]byte, 64<<10),
		dst:    unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()},
		host:   wsAddr,
		path:   path,
		h:      h,
		mask:   [4]byte{0x5A, 0xC3, 0x3C, 0xA5},
	}
	for _, s := range sources {
		e.sources = append(e.sources, unix.SockaddrInet4{Addr: s.Unmap().As4()})
	}
	return e, nil
}

// dial starts a connection that will send an upgrade request for ticket.
// A failure to even start is reported through onFail. Every connection is
// registered once, edge-triggered, for both directions: no epoll_ctl per
// state change, few system calls per connection, so that the client is
// not what limits a storm.
func (e *engine) dial(ticket string, id int, now int64) {
	c := &wsconn{fd: -1, id: id, start: now, out: upgradeRequest(e.host, e.path, ticket, e.deflate)}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		c.state = stClosed
		e.h.onFail(c, err, now)
		return
	}
	c.fd = fd
	if e.nodelay {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if len(e.sources) > 0 {
		// Pick the port at connect time, per destination, not at bind
		// time: otherwise each source address runs out at ~28k ports.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		src := e.sources[e.nextSrc%len(e.sources)]
		e.nextSrc++
		if err := unix.Bind(fd, &src); err != nil {
			e.fail(c, err, now)
			return
		}
	}
	if err := unix.Connect(fd, &e.dst); err != nil && err != unix.EINPROGRESS {
		e.fail(c, err, now)
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		e.fail(c, err, now)
		return
	}
	for fd >= len(e.conns) {
		e.conns = append(e.conns, make([]*wsconn, len(e.conns)+1024)...)
	}
	e.conns[fd] = c
	e.live++
	// On loopback the connection is usually established by now: send the
	// request at once rather than after a round through epoll.
	e.flush(c, now)
}

// poll waits at most timeoutMs for events and handles them.
func (e *engine) poll(timeoutMs int) {
	n, err := unix.EpollWait(e.epfd, e.events, timeoutMs)
	if err != nil {
		return // EINTR: the caller polls again
	}
	now := time.Now().UnixNano()
	for _, ev := range e.events[:n] {
		fd := int(ev.Fd)
		if fd >= len(e.conns) || e.conns[fd] == nil {
			continue
		}
		c := e.conns[fd]
		if c.state == stConnecting && ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			err := error(errPeerClosed)
			if soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
			e.fail(c, err, now)
			continue
		}
		if ev.Events&unix.EPOLLOUT != 0 && len(c.out) > 0 {
			e.flush(c, now)
			if c.state == stClosed {
				continue
			}
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			e.read(c, now)
		}
	}
}

// read drains the socket: edge-triggered epoll reports new bytes once.
func (e *engine) read(c *wsconn, now int64) {
	for c.state != stClosed {
		n := e.readOnce(c, now)
		if n < len(e.rbuf) {
			return
		}
	}
}

// readOnce reads and processes what one read returns, and returns its
// size (0 when nothing was there).
func (e *engine) readOnce(c *wsconn, now int64) int {
	n, err := unix.Read(c.fd, e.rbuf)
	if err == unix.EAGAIN {
		return 0
	}
	if n <= 0 {
		if err == nil {
			err = errPeerClosed
		}
		e.fail(c, err, now)
		return 0
	}
	data := e.rbuf[:n]
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	used := e.process(c, data, now)
	if c.state == stClosed {
		return 0
	}
	if rest := data[used:]; len(rest) > 0 {
		c.in = append(c.in[:0], rest...)
	} else if cap(c.in) > 4096 {
		c.in = nil
	} else {
		c.in = c.in[:0]
	}
	return n
}

// process consumes complete units (the response head, then frames) from
// data and returns how many bytes it used.
func (e *engine) process(c *wsconn, data []byte, now int64) int {
	used := 0
	if c.state != stOpen {
		if len(c.out) > 0 {
			// A response before the whole request went out: the
			// server refused early; what is left can never be sent.
			c.out = nil
		}
		status, n, err := parseResponseHead(data)
		if err != nil {
			e.fail(c, err, now)
			return 0
		}
		if n == 0 {
			return 0
		}
		if status != 101 {
			e.close(c)
			e.h.onReject(c, status, now)
			return 0
		}
		c.state, c.opened = stOpen, true
		c.deflate = e.deflate && acceptsDeflate(data[:n])
		used = n
		e.h.onOpen(c, now)
		if c.state == stClosed {
			return 0
		}
	}
	for used < len(data) {
		f, total, err := parseFrame(data[used:])
		if err != nil {
			e.fail(c, err, now)
			return 0
		}
		if total == 0 {
			break
		}
		used += total
		switch f.op {
		case opPing:
			if f.rsv1 {
				e.fail(c, errFrame, now) // control frames are never compressed
				return 0
			}
			e.send(c, opPong, f.payload, now)
		case opPong:
		case opClose:
			e.send(c, opClose, f.payload, now)
			e.fail(c, errServerClose, now)
			return 0
		default:
			if err := e.message(c, f, total, now); err != nil {
				e.fail(c, err, now)
				return 0
			}
		}
		if c.state == stClosed {
			return 0
		}
	}
	return used
}

// message takes a data or continuation frame of total bytes on the wire:
// it delivers a whole message to the handler, inflated when it came
// compressed, or keeps a fragment until its last frame.
func (e *engine) message(c *wsconn, f frame, total int, now int64) error {
	if f.rsv1 && (!c.deflate || f.op == opContinuation) {
		return errFrame // RSV1 only with the extension, on a message's first frame
	}
	op, payload, rx := f.op, f.payload, received{wire: total, deflated: f.rsv1}
	switch {
	case op == opContinuation && c.frag == nil, op != opContinuation && c.frag != nil:
		return errFrame // a continuation of nothing, or a message inside one
	case op == opContinuation:
		c.frag.data = append(c.frag.data, payload...)
		c.frag.rx.wire += total
		if !f.fin {
			return nil
		}
		op, payload, rx = c.frag.op, c.frag.data, c.frag.rx
		c.frag = nil
	case !f.fin:
		c.frag = &fragment{op: op, rx: rx, data: append([]byte(nil), payload...)}
		return nil
	}
	if rx.deflated {
		var err error
		if payload, err = e.infl.inflate(payload); err != nil {
			return err
		}
	}
	e.h.onMessage(c, op, payload, rx, now)
	return nil
}

// send writes one masked frame, queueing what the socket does not take.
func (e *engine) send(c *wsconn, op byte, payload []byte, now int64) {
	if c.state == stClosed {
		return
	}
	waiting := len(c.out) > 0 // an EPOLLOUT edge will flush it
	c.out = appendClientFrame(c.out, op, payload, e.mask)
	if !waiting {
		e.flush(c, now)
	}
}

// flush writes what the socket takes now; the rest waits for EPOLLOUT.
func (e *engine) flush(c *wsconn, now int64) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if err == unix.EAGAIN || err == unix.ENOTCONN {
			return // not connected yet, or the send buffer is full
		}
		if err != nil {
			e.fail(c, err, now)
			return
		}
		if c.state == stConnecting {
			c.state = stHandshake
		}
		c.out = c.out[n:]
	}
	c.out = nil
}

// close closes c at the client's request with a reset, so that no
// TIME_WAIT is left on the client's ports.
func (e *engine) close(c *wsconn) {
	if c.state == stClosed {
		return
	}
	c.state = stClosed
	if c.fd >= 0 {
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		_ = unix.Close(c.fd)
		if c.fd < len(e.conns) && e.conns[c.fd] == c {
			e.conns[c.fd] = nil
			e.live--
		}
	}
	c.in, c.out, c.frag = nil, nil, nil
}

func (e *engine) fail(c *wsconn, err error, now int64) {
	if c.state == stClosed {
		return
	}
	e.close(c)
	e.h.onFail(c, err, now)
}

// expire fails every connection still not open after timeout.
func (e *engine) expire(now int64, timeout time.Duration) {
	for _, c := range e.conns {
		if c != nil && c.state != stOpen && now-c.start > int64(timeout) {
			e.fail(c, errTimeout, now)
		}
	}
}

// each calls f for every live connection.
func (e *engine) each(f func(c *wsconn)) {
	for _, c := range e.conns {
		if c != nil {
			f(c)
		}
	}
}

// shutdown closes every connection and the epoll instance.
func (e *engine) shutdown() {
	for _, c := range e.conns {
		if c != nil {
			e.close(c)
		}
	}
	_ = unix.Close(e.epfd)
}

// errPeerClosed is a connection the server closed without a close frame.
var errPeerClosed = errors.New("closed by server")

// errServerClose is a close frame from the server.
var errServerClose = errors.New("close frame from server")

// raiseFDLimit lifts the soft file descriptor limit to the hard one.
func raiseFDLimit() {
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &r)
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU() cpuUsage {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return cpuUsage{}
	}
	return cpuUsage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

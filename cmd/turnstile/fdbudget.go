package main

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
)

// fdBudget splits the process's file descriptors (RLIMIT_NOFILE) between
// the WebSocket listener and the HTTP listener, keeping headroom for the
// rest: stdio, the pollers and listeners (a few per event loop), files read
// at SIGHUP, store connections. Neither listener may take the other's
// share, and together they stay below the limit, so that the WebSocket
// listener's accept never meets EMFILE (which would stop gnet for good).
type fdBudget struct {
	Limit    int // RLIMIT_NOFILE (soft; Go raises it to the hard limit at start)
	Headroom int // kept for everything but the two listeners' connections
	WS       int // most sockets the WebSocket listener holds (engine.Config.MaxFDs)
	HTTP     int // most HTTP connections open at once
}

// minFDs is the least RLIMIT_NOFILE the server starts with.
const minFDs = 128

func newFDBudget(limit, loops int) (fdBudget, error) {
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	b := fdBudget{Limit: limit, Headroom: 64 + 4*loops}
	avail := limit - b.Headroom
	if limit < minFDs || avail < 32 {
		return b, fmt.Errorf("the open-file limit (ulimit -n) is %d: turnstile needs at least %d (and %d with -loops %d); raise it with ulimit -n or LimitNOFILE=",
			limit, minFDs, max(minFDs, b.Headroom+32), loops)
	}
	b.HTTP = min(max(avail/8, 16), 512)
	b.WS = avail - b.HTTP
	return b, nil
}

// processFDLimit is the current soft RLIMIT_NOFILE.
func processFDLimit() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur > 1<<30 {
		return 1 << 30, nil
	}
	return int(r.Cur), nil
}

// limitListener holds at most n accepted connections at once. Past it,
// Accept waits (the kernel's backlog holds the connection, using no fd of
// ours) until one closes. net/http's Serve also rides out EMFILE itself,
// but the limit keeps HTTP from eating the WebSocket listener's share.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}
}

// Accept is called by one goroutine (http.Server.Serve).
func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

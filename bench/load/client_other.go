//go:build !linux

package load

import (
	"net/netip"
	"time"
)

// The epoll client exists only on Linux; elsewhere a run fails clearly.

type wsconn struct {
	id      int
	opened  bool
	welcome bool
	start   int64
}

type handler interface {
	onOpen(c *wsconn, now int64)
	onReject(c *wsconn, status int, now int64)
	onMessage(c *wsconn, op byte, payload []byte, rx received, now int64)
	onFail(c *wsconn, err error, now int64)
}

type engine struct{ nodelay, deflate bool }

func newEngine(string, string, []netip.Addr, handler) (*engine, error) {
	return nil, errUnsupportedOS
}
func (e *engine) dial(string, int, int64)           {}
func (e *engine) poll(int)                          {}
func (e *engine) send(*wsconn, byte, []byte, int64) {}
func (e *engine) close(*wsconn)                     {}
func (e *engine) expire(int64, time.Duration)       {}
func (e *engine) each(func(*wsconn))                {}
func (e *engine) shutdown()                         {}
func raiseFDLimit()                                 {}

func selfCPU() cpuUsage { return cpuUsage{} }

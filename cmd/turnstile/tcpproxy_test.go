package main

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy stands between a client and the WebSocket listener, so a test can
// cut every connection (a dropped TCP link, without a close frame) and turn
// new ones away (the server unreachable) while the server itself runs on.
type tcpProxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	paused bool // accept and close at once, as an unreachable server looks to a client
	conns  map[net.Conn]struct{}
}

// newTCPProxy listens on a free loopback port; set the target before use.
func newTCPProxy(t *testing.T) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// SetTarget names the address new connections are forwarded to.
func (p *tcpProxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Pause turns new connections away until Resume.
func (p *tcpProxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *tcpProxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// Cut closes every proxied connection on both sides, with no close frame.
func (p *tcpProxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	return n / 2
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, paused := p.target, p.paused
		p.mu.Unlock()
		if paused || target == "" {
			c.Close()
			continue
		}
		go p.pipe(c, target)
	}
}

func (p *tcpProxy) pipe(c net.Conn, target string) {
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(s, c)
	go cp(c, s)
	<-done
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

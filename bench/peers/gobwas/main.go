// Command peer-gobwas is the lean goroutine-per-connection baseline:
// gobwas/ws over a hijacked net/http connection, one reading goroutine per
// connection, pushes written straight from the publishing goroutine.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/turnstile-push/turnstile/bench/peers/internal/peer"
)

type conn struct {
	mu sync.Mutex // one writer at a time
	nc net.Conn
}

// Send implements peer.Sender. It writes under the connection's lock with
// a deadline, so a slow consumer costs the publisher at most that long.
// Safe for concurrent use.
func (c *conn) Send(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if err := wsutil.WriteServerMessage(c.nc, ws.OpText, p); err != nil {
		c.nc.Close()
	}
}

func main() {
	srv := peer.Start("peer-gobwas", os.Args[1:])
	srv.RefuseCompression("peer-gobwas")
	cfg := srv.Config()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := srv.Admit(w, r)
		if !ok {
			return
		}
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		c := &conn{nc: nc}
		c.mu.Lock()
		srv.Hub.Add(user, c)
		err = wsutil.WriteServerMessage(nc, ws.OpText, srv.Welcome(user))
		c.mu.Unlock()
		defer func() {
			srv.Hub.Remove(user, c)
			nc.Close()
		}()
		for err == nil {
			_ = nc.SetReadDeadline(time.Now().Add(60 * time.Second))
			var data []byte
			var op ws.OpCode
			data, op, err = wsutil.ReadClientData(nc)
			if err == nil && cfg.Echo {
				c.mu.Lock()
				err = wsutil.WriteServerMessage(nc, op, data)
				c.mu.Unlock()
			}
		}
	})
	go func() {
		fmt.Fprintln(os.Stderr, (&http.Server{Addr: cfg.WSAddr, Handler: handler}).ListenAndServe())
		os.Exit(1)
	}()
	fmt.Fprintln(os.Stderr, srv.ServeHTTPAPI())
	os.Exit(1)
}

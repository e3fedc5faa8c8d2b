// Command peer-nbio is the event-driven baseline: lesismal/nbio's epoll
// HTTP engine and WebSocket upgrader, no goroutine per connection.
package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/turnstile-push/turnstile/bench/peers/internal/peer"
)

type conn struct {
	mu   sync.Mutex // orders the welcome before any push
	ws   *websocket.Conn
	user string
}

// Send implements peer.Sender; nbio queues the write without blocking.
// Safe for concurrent use.
func (c *conn) Send(p []byte) {
	c.mu.Lock()
	_ = c.ws.WriteMessage(websocket.TextMessage, p)
	c.mu.Unlock()
}

func main() {
	srv := peer.Start("peer-nbio", os.Args[1:])
	srv.RefuseCompression("peer-nbio")
	cfg := srv.Config()
	up := websocket.NewUpgrader()
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.KeepaliveTime = 60 * time.Second
	up.OnMessage(func(wc *websocket.Conn, mt websocket.MessageType, data []byte) {
		if cfg.Echo {
			_ = wc.WriteMessage(mt, data)
		}
	})
	up.OnClose(func(wc *websocket.Conn, _ error) {
		if c, ok := wc.Session().(*conn); ok {
			srv.Hub.Remove(c.user, c)
		}
	})
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := srv.Admit(w, r)
		if !ok {
			return
		}
		wc, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &conn{ws: wc, user: user}
		wc.SetSession(c)
		c.mu.Lock()
		srv.Hub.Add(user, c)
		_ = wc.WriteMessage(websocket.TextMessage, srv.Welcome(user))
		c.mu.Unlock()
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{cfg.WSAddr},
		Handler:                 ws,
		MaxLoad:                 1 << 20,
		ReleaseWebsocketPayload: true,
	})
	if err := engine.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, srv.ServeHTTPAPI())
	os.Exit(1)
}

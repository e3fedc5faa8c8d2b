// Command peer-gorilla is the baseline the usual way: net/http and
// gorilla/websocket, a reader and a writer goroutine per connection, a
// buffered channel per connection for pushes.
//
// With -compression on it negotiates permessage-deflate the usual way too:
// Upgrader.EnableCompression (gorilla offers only no context takeover) and
// WriteMessage per connection, so every push is compressed once for each
// connection it goes to (no PreparedMessage): the per-connection cost that
// turnstile's compress-once broadcast is compared with.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
	"github.com/turnstile-push/turnstile/bench/peers/internal/peer"
)

// sendQueue is the per-connection outbound channel; a connection whose
// queue is full is a slow consumer and is closed.
const sendQueue = 256

type conn struct {
	ws   *websocket.Conn
	send chan []byte
	done chan struct{}
}

// Send implements peer.Sender; safe for concurrent use.
func (c *conn) Send(p []byte) {
	select {
	case c.send <- p:
	case <-c.done:
	default:
		c.ws.Close() // slow consumer
	}
}

func main() {
	srv := peer.Start("peer-gorilla", os.Args[1:])
	cfg := srv.Config()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, EnableCompression: cfg.Compression}
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := srv.Admit(w, r)
		if !ok {
			return
		}
		wc, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		// A no-op unless the client accepted the extension; said outright
		// so that the baseline does not rest on gorilla's default.
		wc.EnableWriteCompression(cfg.Compression)
		c := &conn{ws: wc, send: make(chan []byte, sendQueue), done: make(chan struct{})}
		// Welcome first in the queue, registered before it is written:
		// a client that has its welcome receives every later publish.
		c.send <- srv.Welcome(user)
		srv.Hub.Add(user, c)
		go c.writeLoop(cfg.PingInterval)
		c.readLoop(cfg.Echo)
		srv.Hub.Remove(user, c)
		close(c.done)
	})
	go func() {
		fmt.Fprintln(os.Stderr, (&http.Server{Addr: cfg.WSAddr, Handler: ws}).ListenAndServe())
		os.Exit(1)
	}()
	fmt.Fprintln(os.Stderr, srv.ServeHTTPAPI())
	os.Exit(1)
}

func (c *conn) readLoop(echo bool) {
	defer c.ws.Close()
	c.ws.SetReadLimit(65536)
	for {
		op, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if echo {
			select {
			case c.send <- data:
			default:
				return
			}
			_ = op
		}
	}
}

func (c *conn) writeLoop(pingEvery time.Duration) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	defer c.ws.Close()
	for {
		select {
		case p := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, p); err != nil {
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

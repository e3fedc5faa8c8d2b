// Command peer-centrifuge is the library inside Centrifugo, served the way
// Centrifugo serves WebSocket clients: a centrifuge.Node with its in-memory
// broker and default hub, and centrifuge's own WebSocket handler (a reader
// and a writer goroutine per connection, its JSON client protocol v2).
//
// Admission is the shared ticket flow: the handler for -ws-path redeems the
// ticket (peer.Server.Admit) and hands the user to centrifuge as
// credentials in the request context, so the client's connect command
// carries no token. Every connection is subscribed server-side to its
// user's channel "#<user>" and to the channel "broadcast"; /publish to a
// user or to all is a node.Publish on one of them. A client may subscribe
// to any other channel turnstile would accept (the load tool's "load:N"),
// with recovery: /publish to such a channel keeps history as turnstile's
// defaults do (historySize, historyTTL), so a client that comes back
// subscribes from its last position and gets what it missed in the
// subscribe reply. -echo answers every client "send" with an async message
// (Client.Send). Centrifuge's permessage-deflate is not wired:
// -compression on is refused.
//
// What a client sees differs from the other peers (the load tool speaks
// both): a connect reply instead of the welcome, pushes
// {"push":{"channel":…,"pub":{"data":…}}} several to a frame, one per line,
// and application pings "{}" that it must answer with "{}".
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/turnstile-push/turnstile/bench/peers/internal/peer"
	"github.com/turnstile-push/turnstile/engine"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// broadcastChannel is the channel every connection is subscribed to.
const broadcastChannel = "broadcast"

// The history of a channel clients subscribe to themselves: turnstile's
// -history-size and -history-ttl defaults.
const (
	historySize = 100
	historyTTL  = 5 * time.Minute
)

func main() {
	const name = "peer-centrifuge"
	srv := peer.Start(name, os.Args[1:])
	srv.RefuseCompression(name)
	cfg := srv.Config()
	node, err := newNode(cfg.Echo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ws := handler(srv, node, centrifuge.WebsocketConfig{
		CheckOrigin:    func(*http.Request) bool { return true },
		PingPongConfig: centrifuge.PingPongConfig{PingInterval: cfg.PingInterval},
	})
	go func() {
		fmt.Fprintln(os.Stderr, (&http.Server{Addr: cfg.WSAddr, Handler: ws}).ListenAndServe())
		os.Exit(1)
	}()
	fmt.Fprintln(os.Stderr, srv.ServeHTTPAPIWith(publisher{node}))
	os.Exit(1)
}

// newNode returns a running node: in-memory broker and presence, the
// default hub, nothing logged. Every connection is subscribed to its
// user's channel and the broadcast channel; with echo, a client's async
// message comes back to it.
func newNode(echo bool) (*centrifuge.Node, error) {
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(ctx context.Context, _ centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		cred, ok := centrifuge.GetCredentials(ctx)
		if !ok {
			return centrifuge.ConnectReply{}, centrifuge.DisconnectInvalidToken // not admitted: never happens behind handler
		}
		return centrifuge.ConnectReply{Subscriptions: map[string]centrifuge.SubscribeOptions{
			"#" + cred.UserID: {}, broadcastChannel: {},
		}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if !clientChannel(e.Channel) {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{EnableRecovery: true}}, nil)
		})
		if echo {
			c.OnMessage(func(e centrifuge.MessageEvent) { _ = c.Send(e.Data) })
		}
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	return node, nil
}

// handler admits a request by its ticket and passes it, with the user as
// centrifuge credentials, to centrifuge's WebSocket handler.
func handler(srv *peer.Server, node *centrifuge.Node, wc centrifuge.WebsocketConfig) http.Handler {
	ws := centrifuge.NewWebsocketHandler(node, wc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := srv.Admit(w, r)
		if !ok {
			return
		}
		ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: user})
		ws.ServeHTTP(w, r.WithContext(ctx))
	})
}

// publisher is /publish for this peer (engine.Publisher): a user's publish
// and a broadcast are publications on its channel, through the node's
// broker. Recipients are the channel's subscribers on this node.
type publisher struct{ node *centrifuge.Node }

var errNoChannels = fmt.Errorf("peer-centrifuge: no /disconnect, and no publishing to %q but as a broadcast", broadcastChannel)

// clientChannel says whether a client may subscribe to channel itself:
// a name turnstile accepts, other than the server-side ones.
func clientChannel(channel string) bool {
	return channel != broadcastChannel && engine.ValidChannel(channel)
}

func (p publisher) PublishChannel(_ context.Context, channel string, data []byte, _ string) (engine.PublishResult, error) {
	switch {
	case strings.HasPrefix(channel, "#"):
		return p.publish(channel, data)
	case clientChannel(channel):
		return p.publish(channel, data, centrifuge.WithHistory(historySize, historyTTL))
	}
	return engine.PublishResult{}, errNoChannels
}

func (p publisher) BroadcastAll(_ context.Context, data []byte) (int, error) {
	r, err := p.publish(broadcastChannel, data)
	return r.Recipients, err
}

func (p publisher) publish(channel string, data []byte, opts ...centrifuge.PublishOption) (engine.PublishResult, error) {
	n := p.node.Hub().NumSubscribers(channel)
	r, err := p.node.Publish(channel, data, opts...)
	if err != nil {
		return engine.PublishResult{}, err
	}
	return engine.PublishResult{Recipients: n, Offset: r.Offset, Epoch: r.Epoch}, nil
}

// Disconnect is not offered (engine.Publisher), as by the other peers.
func (publisher) Disconnect(context.Context, broker.Disconnect) (int, error) {
	return 0, errNoChannels
}

// Package peer is what every baseline server under bench/peers shares with
// turnstile, so that a comparison isolates the WebSocket layer: the same
// flags subset, the same /auth, /ws_ticket and /publish (built from
// turnstile's own auth, ticket map and publish handler), the same welcome
// and message payloads. Each peer adds only its WebSocket listener.
//
// It is a benchmark baseline: it must never be used to serve real users.
package peer

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turnstile-push/turnstile/auth"
	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// Config is the flag subset the peers share with turnstile.
type Config struct {
	HTTPAddr     string
	WSAddr       string
	WSPath       string
	PublishKey   string
	TicketTTL    time.Duration
	PingInterval time.Duration
	Echo         bool
	// Compression is -compression on: negotiate permessage-deflate, as
	// turnstile's flag of the same name. Only peers that can compress
	// accept it (see RefuseCompression).
	Compression bool
}

// ParseFlags reads the shared flags; -dev is accepted and always on.
func ParseFlags(name string, args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.HTTPAddr, "http", ":8080", "HTTP API listen address")
	fs.StringVar(&c.WSAddr, "ws", ":8081", "WebSocket listen address")
	fs.StringVar(&c.WSPath, "ws-path", "/ws", "the only path that upgrades")
	fs.StringVar(&c.PublishKey, "publish-key", os.Getenv("TURNSTILE_PUBLISH_KEY"), "bearer key for /publish")
	fs.DurationVar(&c.TicketTTL, "ticket-ttl", 30*time.Second, "lifetime of a ticket")
	fs.DurationVar(&c.PingInterval, "ping-interval", 25*time.Second, "ping a connection this often")
	fs.BoolVar(&c.Echo, "echo", false, "echo every client data message")
	fs.Bool("dev", true, "demo user maggie/secret and random keys (always on for peers)")
	compression := fs.String("compression", "off", "permessage-deflate for clients that offer it: off or on (peers that cannot compress refuse on)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch *compression {
	case "off":
	case "on":
		c.Compression = true
	default:
		return c, fmt.Errorf("peer: -compression %q: want off or on", *compression)
	}
	if c.PublishKey == "" {
		return c, errors.New("peer: -publish-key (or TURNSTILE_PUBLISH_KEY) is required")
	}
	return c, nil
}

// Server is the shared HTTP side and the connection registry of a peer.
type Server struct {
	cfg     Config
	users   *auth.Users
	tokens  *auth.Tokens
	tickets *ticket.Map
	Hub     *Hub
	nextID  atomic.Uint64
}

// New builds the shared parts: dev user, random HS256 key, ticket map.
func New(cfg Config) (*Server, error) {
	key, err := auth.GenerateDevKey()
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewHS256(key, auth.TokenConfig{})
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, users: auth.DevUsers(), tokens: tokens,
		tickets: ticket.NewMap(ticket.MapConfig{}), Hub: NewHub()}, nil
}

// Start parses args as the peer called name and builds its Server; on a
// bad flag (exit 2) or a failed start (exit 1) it prints why and exits.
// It is what every peer's main does first.
func Start(name string, args []string) *Server {
	cfg, err := ParseFlags(name, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return srv
}

// RefuseCompression exits 2 when -compression on was asked of a peer that
// has no permessage-deflate: running it uncompressed under that flag would
// pass off uncompressed figures as compressed ones.
func (s *Server) RefuseCompression(name string) {
	if s.cfg.Compression {
		fmt.Fprintf(os.Stderr, "%s: -compression on is not supported by this peer\n", name)
		os.Exit(2)
	}
}

// Config returns the configuration. Safe for concurrent use.
func (s *Server) Config() Config { return s.cfg }

// Admit checks the path and redeems the request's ticket, the way a
// net/http server does it. On failure it has written the HTTP answer
// (404 or 401, with Connection: close) and returns ok == false.
// Safe for concurrent use.
func (s *Server) Admit(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	if r.URL.Path != s.cfg.WSPath {
		reject(w, http.StatusNotFound)
		return "", false
	}
	c, err := s.tickets.Redeem([]byte(r.URL.Query().Get("ticket")), time.Now())
	if err != nil {
		reject(w, http.StatusUnauthorized)
		return "", false
	}
	return c.Subject, true
}

func reject(w http.ResponseWriter, status int) {
	w.Header().Set("Connection", "close")
	http.Error(w, http.StatusText(status), status)
}

// Welcome returns the welcome payload for a new connection of user.
// Safe for concurrent use.
func (s *Server) Welcome(user string) []byte {
	id := s.nextID.Add(1)
	b, _ := json.Marshal(map[string]string{"type": "welcome", "user": user, "conn": strconv.FormatUint(id, 10)})
	return b
}

// Message wraps published data as the payload every connection receives.
func Message(data []byte) []byte {
	const head, tail = `{"type":"message","data":`, `}`
	b := make([]byte, 0, len(head)+len(data)+len(tail))
	return append(append(append(b, head...), data...), tail...)
}

// ServeHTTPAPI serves /auth, /ws_ticket, /publish and /healthz on the -http
// address until it fails; /publish goes to the Hub.
func (s *Server) ServeHTTPAPI() error { return s.ServeHTTPAPIWith(s.Hub) }

// ServeHTTPAPIWith is ServeHTTPAPI with /publish going to p instead of the
// Hub: for a peer whose library keeps its own registry of connections.
func (s *Server) ServeHTTPAPIWith(p engine.Publisher) error {
	pub, err := engine.NewPublishHandler(p, s.cfg.PublishKey, 0)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(s.cfg.WSAddr)
	api, err := auth.NewHandlers(auth.HandlerConfig{
		Users: s.users, Tokens: s.tokens, Store: s.tickets,
		TicketTTL: s.cfg.TicketTTL, WSPort: port, WSPath: s.cfg.WSPath,
		MaxTicketsPerUser: -1, // every load connection is the demo user
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/auth", api.Auth())
	mux.Handle("/ws_ticket", api.Ticket())
	mux.Handle("/publish", pub)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return http.ListenAndServe(s.cfg.HTTPAddr, mux)
}

// Sender is one connection as the hub sees it.
type Sender interface {
	// Send queues payload as one text message without blocking.
	Send(payload []byte)
}

// Hub indexes open connections by user, behind one RWMutex: the usual way.
// Safe for concurrent use.
type Hub struct {
	mu     sync.RWMutex
	byUser map[string]map[Sender]struct{}
	count  int
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{byUser: map[string]map[Sender]struct{}{}} }

// Add registers c as a connection of user.
func (h *Hub) Add(user string, c Sender) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.byUser[user]
	if set == nil {
		set = map[Sender]struct{}{}
		h.byUser[user] = set
	}
	set[c] = struct{}{}
	h.count++
}

// Remove forgets c.
func (h *Hub) Remove(user string, c Sender) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.byUser[user]; set != nil {
		if _, ok := set[c]; ok {
			delete(set, c)
			h.count--
		}
		if len(set) == 0 {
			delete(h.byUser, user)
		}
	}
}

// Publish sends data to every connection of user.
func (h *Hub) Publish(user string, data []byte) int {
	msg := Message(data)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.byUser[user] {
		c.Send(msg)
	}
	return len(h.byUser[user])
}

// Broadcast sends data to every connection.
func (h *Hub) Broadcast(data []byte) int {
	msg := Message(data)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.byUser {
		for c := range set {
			c.Send(msg)
		}
	}
	return h.count
}

// errNoChannels: the baselines have users and broadcast, not channels.
var errNoChannels = errors.New("peer: channels are not supported by the baselines; publish to a user or broadcast")

// PublishChannel serves /publish's user publishes (the personal channel
// "#<user>"), so that the baselines keep speaking the same HTTP API as
// turnstile (engine.Publisher). Offsets are not kept: always 0.
func (h *Hub) PublishChannel(_ context.Context, channel string, data []byte, _ string) (engine.PublishResult, error) {
	user, ok := strings.CutPrefix(channel, "#")
	if !ok {
		return engine.PublishResult{}, errNoChannels
	}
	return engine.PublishResult{Recipients: h.Publish(user, data)}, nil
}

// BroadcastAll is Broadcast for engine.Publisher.
func (h *Hub) BroadcastAll(_ context.Context, data []byte) (int, error) {
	return h.Broadcast(data), nil
}

// Disconnect is not offered by the baselines (engine.Publisher).
func (h *Hub) Disconnect(context.Context, broker.Disconnect) (int, error) {
	return 0, errNoChannels
}

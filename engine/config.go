package engine

import (
	"cmp"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// Config configures a Server. The zero value of every field but Store works:
// zero durations and sizes take the defaults below.
type Config struct {
	// Addr is the WebSocket listen address, e.g. ":8081" or "127.0.0.1:0".
	Addr string
	// Path is the only path that upgrades; others get 404. Default "/ws".
	Path string
	// Store redeems tickets. Required.
	Store ticket.Store
	// Origins lists allowed Origin values, exact match, scheme included.
	// A single "*" allows any. Empty: only requests without Origin.
	Origins []string

	HandshakeTimeout time.Duration // default 5s, fixed deadline from accept
	MaxHeaderBytes   int           // default 8192, request line + headers
	MaxMessageBytes  int           // default 65536, all fragments together
	PingInterval     time.Duration // default 25s
	IdleTimeout      time.Duration // default 60s
	MaxPendingBytes  int           // default 1 MiB queued outbound per conn
	MaxConns         int           // 0: no limit
	// MaxConnsPerUser bounds one user's upgraded connections; past it an
	// upgrade gets 429 (its ticket spent: see userquota.go). 0: no limit.
	MaxConnsPerUser int
	// MaxFDs bounds the TCP connections the listener holds at once
	// (handshakes, open and closing); past it a new connection gets a 503
	// and is closed at once, so accept never meets RLIMIT_NOFILE (see
	// fdbudget.go). 0: no limit.
	MaxFDs int
	// SendBufferBytes sets SO_SNDBUF on every connection (inherited from
	// the listener), bounding the kernel memory a client that does not
	// read can pin beside MaxPendingBytes; Linux doubles the value for its
	// bookkeeping. 0: the kernel's default (autotuned, up to tcp_wmem's
	// maximum, often 4 MiB).
	SendBufferBytes int
	Loops           int // 0: GOMAXPROCS

	// Compression negotiates permessage-deflate (RFC 7692) with clients
	// that offer it, with no context takeover either way (deflate.go).
	Compression bool
	// CompressionMinBytes is the smallest pushed payload that is sent
	// compressed; smaller ones go plain. Default 256.
	CompressionMinBytes int

	// Echo sends every client data message back with the same opcode.
	Echo bool
	// OnMessage, if set, receives every client data message (when Echo is
	// off). It runs on the event loop: it must not block, and data is only
	// valid during the call.
	OnMessage func(c *Conn, op byte, data []byte)

	// Broker assigns offsets, keeps history and carries publications
	// between nodes. Nil: an embedded broker with default limits, which
	// the server closes on Stop; a given one the caller closes.
	Broker broker.Broker
	// MaxChannelsPerConn bounds one connection's subscriptions, its
	// personal channel not counted. Default 128.
	MaxChannelsPerConn int

	// Logger receives debug logs of rejections and errors; nil discards.
	Logger *slog.Logger
}

// Defaults, from DESIGN 1.1.
const (
	DefaultPath             = "/ws"
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxHeaderBytes   = 8192
	DefaultMaxMessageBytes  = 65536
	DefaultPingInterval     = 25 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultMaxPendingBytes  = 1 << 20
)

// DefaultAddr is the listen address when Config.Addr is empty.
const DefaultAddr = ":8081"

// withDefaults returns a copy of c with zero fields set to their defaults,
// or an error for a configuration that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, ErrNoStore
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, "?# ") {
		return c, ErrBadPath
	}
	if c.HandshakeTimeout < 0 || c.MaxHeaderBytes < 0 || c.MaxMessageBytes < 0 ||
		c.PingInterval < 0 || c.IdleTimeout < 0 || c.MaxPendingBytes < 0 ||
		c.MaxConns < 0 || c.MaxConnsPerUser < 0 || c.MaxFDs < 0 || c.SendBufferBytes < 0 || c.Loops < 0 ||
		c.MaxChannelsPerConn < 0 || c.CompressionMinBytes < 0 {
		return c, ErrBadLimit
	}
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, DefaultMaxMessageBytes)
	c.PingInterval = cmp.Or(c.PingInterval, DefaultPingInterval)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxPendingBytes = cmp.Or(c.MaxPendingBytes, DefaultMaxPendingBytes)
	c.MaxChannelsPerConn = cmp.Or(c.MaxChannelsPerConn, DefaultMaxChannelsPerConn)
	c.CompressionMinBytes = cmp.Or(c.CompressionMinBytes, DefaultCompressionMinBytes)
	if c.Loops == 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	for _, o := range c.Origins {
		if o != "*" && !strings.Contains(o, "://") {
			return c, fmt.Errorf("%w: %q", ErrOriginInvalid, o)
		}
	}
	return c, nil
}

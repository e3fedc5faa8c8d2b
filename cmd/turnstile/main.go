// Command turnstile is the WebSocket push server: a JWT buys a one-time
// ticket over HTTP, the ticket buys one WebSocket connection, and backends
// publish to channels, to a user's personal channel "#<user>" or to
// everyone through POST /publish. See README.md and PROTOCOL.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/turnstile-push/turnstile/auth"
	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine"
	"github.com/turnstile-push/turnstile/engine/broker"
)

func main() {
	os.Exit(run(os.Args[1:], osGetenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status. 2 means the
// configuration is wrong, 1 that the server could not start or failed.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], os.Stdin, stdout, stderr)
	}
	if isVersionFlag(args) {
		printVersion(stdout)
		return 0
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "turnstile: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	defer startCPUProfiler(getenv, log)()
	srv, err := newServer(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "turnstile: %v\n", err)
		return 2
	}
	// Listen for signals before starting, so that one arriving during the
	// start is handled as a shutdown rather than killing the process.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	if err := srv.start(); err != nil {
		fmt.Fprintf(stderr, "turnstile: %v\n", err)
		return 1
	}
	log.Info("turnstile listening", "http", srv.httpLn.Addr().String(), "ws", srv.ws.Addr().String(),
		"ws_path", cfg.WSPath, "dev", cfg.Dev, "echo", cfg.Echo, "jwt_alg", srv.tokens.Alg(), "logins", srv.users != nil,
		"fd_limit", srv.fds.Limit, "ws_max_sockets", srv.fds.WS, "http_max_conns", srv.fds.HTTP,
		"gomaxprocs", runtime.GOMAXPROCS(0))
	if runtime.GOMAXPROCS(0) == 1 {
		// Measured in bench/README.md ("One CPU"): a reconnect storm takes
		// about 1.3 times as long with one P as with two on the same CPU.
		log.Warn("GOMAXPROCS is 1: the HTTP API waits for the CPU while an event loop sits in epoll_wait, "+
			"which slows /ws_ticket in a reconnect storm; give the process two CPUs or set GOMAXPROCS=2", "gomaxprocs", 1)
	}
	if cfg.MaxConns > srv.fds.WS {
		log.Warn("-max-conns is above what the open-file limit allows; the fd budget refuses connections first",
			"max_conns", cfg.MaxConns, "ws_max_sockets", srv.fds.WS, "fd_limit", srv.fds.Limit)
	}
	if cfg.Dev {
		printQuickStart(stdout, srv)
	}

	for {
		select {
		case err := <-srv.httpErr:
			log.Error("HTTP server failed", "err", err)
			srv.shutdown()
			return 1
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				srv.reloadUsers()
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "drain_timeout", cfg.DrainTimeout)
			if err := srv.shutdown(); err != nil {
				log.Warn("shutdown incomplete", "err", err)
			}
			log.Info("stopped")
			return 0
		}
	}
}

// server is the running product: the ticket store, the WebSocket engine
// and the HTTP API around them.
type server struct {
	cfg        *config
	log        *slog.Logger
	store      *ticket.Map
	tickets    ticket.Store // the store in use: store, or Redis's with -redis
	redis      *redisDeps   // nil without -redis
	users      *auth.Users
	tokens     *auth.Tokens
	jwks       *auth.JWKS // nil unless -jwks-url
	handlers   *auth.Handlers
	keyGuard   *keyGuard // throttles wrong publish keys on every publish-key endpoint
	ws         *engine.Server
	broker     broker.Broker
	publishKey string
	origins    []string // allowed Origins, for the upgrade and for CORS alike
	httpLn     net.Listener
	http       *http.Server
	httpErr    chan error
	draining   atomic.Bool
	stopSweep  context.CancelFunc
	fds        fdBudget
}

func newServer(cfg *config, log *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, log: log, publishKey: cfg.PublishKey, httpErr: make(chan error, 1)}
	var err error
	tokenCfg := auth.TokenConfig{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.JWTTTL, UserClaim: cfg.UserClaim,
		ChannelsClaim: cfg.ChannelsClaim, Channels: cfg.AuthChannels}
	if cfg.Dev && !cfg.authChannelsSet {
		tokenCfg.Channels = []string{"*"}
	}
	switch {
	case cfg.JWTKeyFile != "":
		if s.tokens, err = auth.LoadEdDSAKeyFile(cfg.JWTKeyFile, tokenCfg); err != nil {
			err = fmt.Errorf("-jwt-key %s: %w", cfg.JWTKeyFile, err)
		}
	case cfg.JWTPublicKey != "":
		if s.tokens, err = auth.LoadPublicKeyFile(cfg.JWTPublicKey, tokenCfg); err != nil {
			err = fmt.Errorf("-jwt-public-key %s: %w", cfg.JWTPublicKey, err)
		}
	case cfg.JWKSURL != "":
		s.jwks, err = auth.NewJWKS(auth.JWKSConfig{URL: cfg.JWKSURL, Logger: log.With("jwks", cfg.JWKSURL)})
		if err == nil {
			s.tokens, err = auth.NewJWKSTokens(s.jwks, tokenCfg)
		}
	case cfg.JWTSecret != "":
		s.tokens, err = auth.NewHS256([]byte(cfg.JWTSecret), tokenCfg)
	default: // -dev: a fresh key each start, so dev tokens die with the process.
		var key []byte
		if key, err = auth.GenerateDevKey(); err == nil {
			s.tokens, err = auth.NewHS256(key, tokenCfg)
		}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.UsersFile != "":
		if s.users, err = auth.LoadUsers(cfg.UsersFile); err != nil {
			return nil, err
		}
	case cfg.Dev:
		s.users = auth.DevUsers()
	}
	if s.publishKey == "" {
		s.publishKey = randomHex(24)
	}
	s.origins = cfg.Origins
	if cfg.Dev && len(s.origins) == 0 {
		s.origins = []string{"*"}
	}
	limit, err := processFDLimit()
	if err != nil {
		return nil, err
	}
	if s.fds, err = newFDBudget(limit, cfg.Loops); err != nil {
		return nil, err
	}
	s.store = ticket.NewMap(ticket.MapConfig{Capacity: cfg.TicketCapacity})
	if s.tickets, err = s.setupRedis(); err != nil {
		return nil, err
	}
	if s.broker, err = s.newBroker(); err != nil {
		return nil, err
	}
	s.ws, err = engine.New(engine.Config{
		Addr:                cfg.WSAddr,
		Path:                cfg.WSPath,
		Store:               s.tickets,
		Origins:             s.origins,
		HandshakeTimeout:    cfg.HandshakeTime,
		MaxHeaderBytes:      cfg.MaxHeaderBytes,
		MaxMessageBytes:     cfg.MaxMessageBytes,
		PingInterval:        cfg.PingInterval,
		IdleTimeout:         cfg.IdleTimeout,
		MaxPendingBytes:     cfg.MaxPendingBytes,
		SendBufferBytes:     cfg.SendBufferBytes,
		MaxConns:            cfg.MaxConns,
		MaxConnsPerUser:     cfg.MaxConnsPerUser,
		MaxFDs:              s.fds.WS,
		Loops:               cfg.Loops,
		Echo:                cfg.Echo,
		Compression:         cfg.Compression,
		CompressionMinBytes: cfg.CompressionMinBytes,
		Broker:              s.broker,
		MaxChannelsPerConn:  cfg.MaxChannelsPerConn,
		Logger:              log.With("listener", "ws"),
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// start binds both listeners; a port in use is an error here, not a log line.
func (s *server) start() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener -http %s: %w", s.cfg.HTTPAddr, err)
	}
	if err := s.ws.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("WebSocket listener -ws %s: %w", s.cfg.WSAddr, err)
	}
	ln = newLimitListener(ln, s.fds.HTTP)
	s.httpLn = ln
	_, wsPort, _ := net.SplitHostPort(s.ws.Addr().String())
	var clientAddr func(*http.Request) string // nil: the peer's address
	if len(s.cfg.TrustedProxies) > 0 {
		clientAddr = s.cfg.TrustedProxies.clientAddr
	}
	s.handlers, err = auth.NewHandlers(auth.HandlerConfig{
		ClientAddr: clientAddr,
		Users:      s.users,
		Tokens:     s.tokens,
		Store:      s.tickets,
		TicketTTL:  s.cfg.TicketTTL,
		WSURL:      s.cfg.WSURL,
		WSPort:     wsPort,
		WSPath:     s.cfg.WSPath,
		Logger:     s.log.With("listener", "http"),

		Throttle:          s.cfg.Login,
		MaxTicketsPerUser: ticketQuota(s.cfg.MaxTicketsPerUser),
	})
	if err != nil {
		s.stopAll()
		return err
	}
	publish, err := engine.NewPublishHandler(s.ws, s.publishKey, 0)
	if err != nil {
		s.stopAll()
		return err
	}
	s.keyGuard = newKeyGuard(s.cfg.PublishAuthBurst, s.cfg.PublishAuthInterval, clientAddr, s.log.With("listener", "http"))
	sweepCtx, cancel := context.WithCancel(context.Background())
	s.stopSweep = cancel
	go s.store.Run(sweepCtx, time.Second)
	if s.jwks != nil {
		go s.jwks.Run(sweepCtx) // fetches at once, refreshes, ends with the sweep
	}

	s.http = &http.Server{
		Handler:           s.routes(publish),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.httpErr <- err
		}
	}()
	return nil
}

func (s *server) routes(publish *engine.PublishHandler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/auth", s.cors(s.handlers.Auth()))
	mux.Handle("/ws_ticket", s.cors(s.refuseWhileDraining(s.handlers.Ticket())))
	mux.Handle("/publish", s.refuseWhileDraining(s.keyGuard.wrap(publish)))
	mux.Handle("/disconnect", s.refuseWhileDraining(s.keyGuard.wrap(publish.Disconnect())))
	mux.Handle("/metrics", newMetricsHandler(s))
	if s.cfg.Dev {
		mux.HandleFunc("/", serveDemo)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.ws.Failed() {
			writeStatus(w, http.StatusServiceUnavailable, "websocket listener stopped")
			return
		}
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.ws.Failed() {
			writeStatus(w, http.StatusServiceUnavailable, "websocket listener stopped")
			return
		}
		if s.draining.Load() || !s.ws.Ready() {
			writeStatus(w, http.StatusServiceUnavailable, "draining")
			return
		}
		if s.ws.FDExhausted() {
			writeStatus(w, http.StatusServiceUnavailable, "fd_exhausted")
			return
		}
		if err := s.redisHealth(); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		// Cached keys outlive a provider outage; none at all (it has not
		// answered with a usable set since the start) means every
		// /ws_ticket would answer 401: send new clients elsewhere.
		if s.jwks != nil && s.jwks.Stats().Keys == 0 {
			writeStatus(w, http.StatusServiceUnavailable, "jwks: no keys")
			return
		}
		writeStatus(w, http.StatusOK, "ready")
	})
	return accessLog(s.log, mux)
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q}\n", status)
}

// shutdown drains: /readyz turns 503, every WebSocket gets 1001 and up to
// -drain-timeout to close, then the HTTP server finishes its requests.
func (s *server) shutdown() error {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	errWS := s.ws.Stop(ctx)
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelHTTP()
	errHTTP := s.http.Shutdown(httpCtx)
	s.stopSweep()
	errBroker := s.broker.Close()
	s.redis.close() // after the broker, which uses its clients
	return errors.Join(errWS, errHTTP, errBroker)
}

// stopAll undoes a half-finished start.
func (s *server) stopAll() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.ws.Stop(ctx)
	_ = s.httpLn.Close()
	_ = s.broker.Close()
}

func (s *server) reloadUsers() {
	if s.users == nil || s.cfg.UsersFile == "" {
		s.log.Info("SIGHUP: no -users file to reload")
		return
	}
	if err := s.users.Reload(); err != nil {
		s.log.Error("SIGHUP: users not reloaded, keeping the previous set", "file", s.cfg.UsersFile, "err", err)
		return
	}
	s.log.Info("SIGHUP: users reloaded", "file", s.cfg.UsersFile)
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// hostPort is the address a person on this machine would type.
func hostPort(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

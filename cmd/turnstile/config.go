package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/turnstile-push/turnstile/auth"
	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine"
)

// config is every setting of the binary, after flags and environment.
type config struct {
	HTTPAddr        string
	WSAddr          string
	WSPath          string
	WSURL           string
	Dev             bool
	UsersFile       string
	JWTSecret       string
	JWTKeyFile      string
	JWTPublicKey    string
	JWKSURL         string
	UserClaim       string
	JWTTTL          time.Duration
	JWTIssuer       string
	JWTAudience     string
	TicketTTL       time.Duration
	TicketCapacity  int
	PublishKey      string
	Origins         []string
	TrustedProxies  trustedProxies
	HandshakeTime   time.Duration
	MaxHeaderBytes  int
	MaxMessageBytes int
	PingInterval    time.Duration
	IdleTimeout     time.Duration
	MaxPendingBytes int
	SendBufferBytes int
	MaxConns        int
	MaxConnsPerUser int
	Loops           int
	Echo            bool
	// Compression: -compression on negotiates permessage-deflate;
	// CompressionMinBytes is -compression-min-bytes.
	Compression         bool
	CompressionMinBytes int
	DrainTimeout        time.Duration
	LogLevel            slog.Level
	LogJSON             bool
	redisConfig

	HistorySize        int
	HistoryTTL         time.Duration
	HistoryMaxBytes    int64
	MaxChannelsPerConn int
	ChannelsClaim      string
	AuthChannels       []string
	authChannelsSet    bool // -auth-channels given (it replaces -dev's *)
	// Abuse limits of the HTTP API (see auth.ThrottleConfig and keyguard.go).
	Login               auth.ThrottleConfig
	MaxTicketsPerUser   int
	PublishAuthBurst    int
	PublishAuthInterval time.Duration
}

// envName maps a flag name to its environment variable: -ticket-ttl → TURNSTILE_TICKET_TTL.
func envName(flagName string) string {
	return "TURNSTILE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags from args and, for every flag not given there, the
// environment through getenv. Flags win over the environment. Every error
// names the flag (or variable) and says what would be right.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	var origins, proxies, logLevel, logFormat, authChannels, compression string
	fs := flag.NewFlagSet("turnstile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.HTTPAddr, "http", ":8080", "HTTP API listen address")
	fs.StringVar(&c.WSAddr, "ws", ":8081", "WebSocket listen address")
	fs.StringVar(&c.WSPath, "ws-path", "/ws", "the only path that upgrades")
	fs.StringVar(&c.WSURL, "ws-url", "", "public WebSocket URL handed out by /ws_ticket (default: request host, -ws port, -ws-path)")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: demo user maggie/secret, random keys, any Origin")
	fs.StringVar(&c.UsersFile, "users", "", "htpasswd file with bcrypt entries (htpasswd -B)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 key, at least 32 bytes (prefer TURNSTILE_JWT_SECRET)")
	fs.StringVar(&c.JWTKeyFile, "jwt-key", "", "PEM Ed25519 private key file for EdDSA tokens")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", "", "PEM public key file (RSA, ECDSA P-256 or Ed25519): verify tokens only, /auth off")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "identity provider's JWK Set (https://…/.well-known/jwks.json): verify RS256, ES256, EdDSA tokens by kid, /auth off")
	fs.StringVar(&c.UserClaim, "user-claim", "sub", "JWT claim that names the user (a non-empty string), e.g. email")
	fs.DurationVar(&c.JWTTTL, "jwt-ttl", 15*time.Minute, "lifetime of tokens from /auth")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "turnstile", "required iss")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "turnstile", "required aud")
	fs.DurationVar(&c.TicketTTL, "ticket-ttl", 30*time.Second, "lifetime of a ticket")
	fs.IntVar(&c.TicketCapacity, "ticket-capacity", 1<<20, "most live tickets; past it /ws_ticket answers 503")
	fs.StringVar(&c.PublishKey, "publish-key", "", "bearer key for /publish (prefer TURNSTILE_PUBLISH_KEY)")
	fs.StringVar(&origins, "origins", "", "comma list of allowed Origin values (exact, scheme included), or *")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma list of proxy IPs or CIDRs whose X-Forwarded-For names the client (for login throttling)")
	fs.DurationVar(&c.HandshakeTime, "handshake-timeout", 5*time.Second, "fixed deadline for completing the upgrade")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 8192, "largest upgrade request (request line and headers)")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", 65536, "largest client message, all fragments together")
	fs.DurationVar(&c.PingInterval, "ping-interval", 25*time.Second, "ping an idle connection this often")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 60*time.Second, "close a connection silent for this long")
	fs.IntVar(&c.MaxPendingBytes, "max-pending-bytes", 1<<20, "outbound bytes queued per connection before it is closed as a slow consumer")
	fs.IntVar(&c.SendBufferBytes, "send-buffer-bytes", 65536, "SO_SNDBUF of each WebSocket connection: kernel memory a client that does not read can pin (0: kernel default, autotuned)")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "most open WebSocket connections (0: no limit)")
	fs.IntVar(&c.MaxConnsPerUser, "max-conns-per-user", 100, "most open WebSocket connections of one user; past it upgrades get 429 (0: no limit)")
	fs.IntVar(&c.Loops, "loops", 0, "gnet event loops (0: GOMAXPROCS)")
	fs.BoolVar(&c.Echo, "echo", false, "echo every client data message (conformance tests, latency benchmarks)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long connections get to close after 1001")
	fs.IntVar(&c.HistorySize, "history-size", 100, "messages kept per channel for recovery")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", 5*time.Minute, "how long a channel's messages (and idempotency keys) are kept")
	fs.Int64Var(&c.HistoryMaxBytes, "history-max-bytes", 256<<20, "history of all channels together; the oldest messages go first")
	fs.IntVar(&c.MaxChannelsPerConn, "max-channels-per-conn", 128, "most channels one connection may subscribe to (its personal channel not counted)")
	fs.StringVar(&c.ChannelsClaim, "channels-claim", "channels", "JWT claim listing the channels (names, prefix* patterns) a user may subscribe to")
	fs.StringVar(&authChannels, "auth-channels", "", "comma list of channel grants written into tokens from /auth (default none; * in -dev)")
	fs.IntVar(&c.Login.AddrBurst, "login-addr-burst", auth.DefaultAddrBurst, "failed logins from one address before it is throttled (429)")
	fs.DurationVar(&c.Login.AddrInterval, "login-addr-interval", auth.DefaultAddrInterval, "then one more failed login per address this often")
	fs.IntVar(&c.Login.UserBurst, "login-user-burst", auth.DefaultUserBurst, "failed logins for one user, counted across addresses, before the user is throttled for addresses it has not logged in from")
	fs.DurationVar(&c.Login.UserInterval, "login-user-interval", auth.DefaultUserInterval, "then one more failed login per user this often")
	fs.DurationVar(&c.Login.KnownTTL, "login-known-ttl", auth.DefaultKnownTTL, "an address a user logged in from stays exempt from that user's throttle this long")
	fs.IntVar(&c.MaxTicketsPerUser, "max-tickets-per-user", auth.DefaultMaxTicketsPerUser, "most tickets one user may hold within -ticket-ttl; past it /ws_ticket answers 429 (0: no limit)")
	fs.IntVar(&c.PublishAuthBurst, "publish-auth-burst", 10, "wrong publish keys from one address before it is throttled (429, also for the right key)")
	fs.DurationVar(&c.PublishAuthInterval, "publish-auth-interval", 6*time.Second, "then one more wrong publish key per address this often")
	c.redisFlags(fs)
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.StringVar(&compression, "compression", "off", "permessage-deflate (RFC 7692, no context takeover) for clients that offer it: off or on")
	fs.IntVar(&c.CompressionMinBytes, "compression-min-bytes", 256, "with -compression on, pushed payloads smaller than this go uncompressed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: turnstile [flags]\n       turnstile -version\n       turnstile passwd [-cost N] [-delete] FILE USER\n\nEvery flag can also be set as TURNSTILE_<FLAG> (e.g. -ticket-ttl → TURNSTILE_TICKET_TTL); flags win.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every setting is a -flag", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if given[f.Name] || v == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %v", name, v, err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	var err error
	c.authChannelsSet = given["auth-channels"] || getenv(envName("auth-channels")) != ""
	if c.AuthChannels, err = parseAuthChannels(authChannels); err != nil {
		return nil, err
	}
	if c.Origins, err = parseOrigins(origins); err != nil {
		return nil, err
	}
	if c.TrustedProxies, err = parseTrustedProxies(proxies); err != nil {
		return nil, err
	}
	if c.LogLevel, err = parseLevel(logLevel); err != nil {
		return nil, err
	}
	switch compression {
	case "off":
	case "on":
		c.Compression = true
	default:
		return nil, fmt.Errorf("-compression %q: want off or on", compression)
	}
	switch logFormat {
	case "text":
	case "json":
		c.LogJSON = true
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", logFormat)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, a := range []struct{ flag, addr string }{{"-http", c.HTTPAddr}, {"-ws", c.WSAddr}} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil || port == "" {
			bad("%s %q: want host:port or :port", a.flag, a.addr)
		}
	}
	if c.HTTPAddr == c.WSAddr && !strings.HasSuffix(c.HTTPAddr, ":0") {
		bad("-http and -ws are both %q: they need different ports", c.HTTPAddr)
	}
	if !strings.HasPrefix(c.WSPath, "/") || strings.ContainsAny(c.WSPath, "?# ") {
		bad("-ws-path %q: want an absolute path such as /ws", c.WSPath)
	}
	if c.WSURL != "" {
		u, err := url.Parse(c.WSURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.RawQuery != "" {
			bad("-ws-url %q: want ws://host[:port]/path or wss://host[:port]/path, without a query", c.WSURL)
		}
	}
	c.validateKeys(bad)
	if c.JWTSecret != "" && len(c.JWTSecret) < auth.MinSecretBytes {
		bad("-jwt-secret is %d bytes: HS256 needs at least %d (try: openssl rand -base64 48)", len(c.JWTSecret), auth.MinSecretBytes)
	}
	if !c.Dev && c.PublishKey == "" {
		bad("no publish key: set TURNSTILE_PUBLISH_KEY (16+ bytes) so backends can call /publish, or run with -dev")
	}
	if c.PublishKey != "" && len(c.PublishKey) < 16 {
		bad("-publish-key is %d bytes: use at least 16 (try: openssl rand -hex 24)", len(c.PublishKey))
	}
	errs = append(errs, c.validateRedis()...)
	if c.JWTIssuer == "" || c.JWTAudience == "" {
		bad("-jwt-issuer and -jwt-audience must not be empty")
	}
	positive := []struct {
		flag string
		d    time.Duration
	}{{"-jwt-ttl", c.JWTTTL}, {"-ticket-ttl", c.TicketTTL}, {"-handshake-timeout", c.HandshakeTime},
		{"-ping-interval", c.PingInterval}, {"-idle-timeout", c.IdleTimeout}, {"-drain-timeout", c.DrainTimeout},
		{"-login-addr-interval", c.Login.AddrInterval}, {"-login-user-interval", c.Login.UserInterval},
		{"-login-known-ttl", c.Login.KnownTTL}, {"-publish-auth-interval", c.PublishAuthInterval},
		{"-history-ttl", c.HistoryTTL}}
	for _, p := range positive {
		if p.d <= 0 {
			bad("%s %v: must be positive", p.flag, p.d)
		}
	}
	if c.PingInterval > 0 && c.IdleTimeout > 0 && c.PingInterval >= c.IdleTimeout {
		bad("-ping-interval %v must be shorter than -idle-timeout %v, or idle but healthy clients are closed", c.PingInterval, c.IdleTimeout)
	}
	if c.TicketCapacity > ticket.MaxCapacity {
		bad("-ticket-capacity %d: must be at most %d", c.TicketCapacity, ticket.MaxCapacity)
	}
	if c.MaxHeaderBytes < 512 {
		bad("-max-header-bytes %d: must be at least 512", c.MaxHeaderBytes)
	}
	if c.MaxMessageBytes < 125 {
		bad("-max-message-bytes %d: must be at least 125", c.MaxMessageBytes)
	}
	if c.CompressionMinBytes < 1 {
		bad("-compression-min-bytes %d: must be at least 1", c.CompressionMinBytes)
	}
	if c.MaxPendingBytes < 4096 {
		bad("-max-pending-bytes %d: must be at least 4096", c.MaxPendingBytes)
	}
	if c.SendBufferBytes != 0 && (c.SendBufferBytes < 4096 || c.SendBufferBytes > 64<<20) {
		bad("-send-buffer-bytes %d: want 0 (kernel default) or 4096 to 67108864", c.SendBufferBytes)
	}
	if c.MaxConns < 0 {
		bad("-max-conns %d: must be 0 (no limit) or more", c.MaxConns)
	}
	if c.MaxConnsPerUser < 0 {
		bad("-max-conns-per-user %d: must be 0 (no limit) or more", c.MaxConnsPerUser)
	}
	for _, p := range []struct {
		flag string
		v    int
	}{{"-ticket-capacity", c.TicketCapacity}, {"-login-addr-burst", c.Login.AddrBurst}, {"-login-user-burst", c.Login.UserBurst},
		{"-publish-auth-burst", c.PublishAuthBurst}, {"-history-size", c.HistorySize}, {"-max-channels-per-conn", c.MaxChannelsPerConn}} {
		if p.v < 1 {
			bad("%s %d: must be at least 1", p.flag, p.v)
		}
	}
	if c.MaxTicketsPerUser < 0 || c.MaxTicketsPerUser > auth.MaxTicketQuota {
		bad("-max-tickets-per-user %d: must be 0 (no limit) to %d", c.MaxTicketsPerUser, auth.MaxTicketQuota)
	}
	if c.Loops < 0 {
		bad("-loops %d: must be 0 (GOMAXPROCS) or more", c.Loops)
	}
	if c.HistoryMaxBytes < 1<<20 {
		bad("-history-max-bytes %d: must be at least 1048576 (1 MiB)", c.HistoryMaxBytes)
	}
	if c.ChannelsClaim == "" {
		bad("-channels-claim must not be empty")
	}
	return errors.Join(errs...)
}

// ticketQuota maps -max-tickets-per-user to auth's setting: the flag's 0 (no
// limit) is auth's negative, auth's 0 being its default.
func ticketQuota(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

func parseOrigins(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "*" {
			out = append(out, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("-origins: %q is not an origin; want scheme://host[:port], e.g. https://app.example.com", o)
		}
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	if len(out) > 1 {
		for _, o := range out {
			if o == "*" {
				return nil, errors.New("-origins: * allows every Origin; do not combine it with a list")
			}
		}
	}
	return out, nil
}

// parseAuthChannels reads -auth-channels: grants (names, prefix* patterns).
func parseAuthChannels(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, g := range strings.Split(s, ",") {
		g = strings.TrimSpace(g)
		if !engine.ValidGrant(g) {
			return nil, fmt.Errorf("-auth-channels: %q is not a channel grant; want a name of A-Z a-z 0-9 _ - . : @ / (up to 200 bytes), a prefix ending in *, or *", g)
		}
		out = append(out, g)
	}
	return out, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// osGetenv is the environment of the process; tests pass their own.
var osGetenv = os.Getenv

// errHelp is returned for -h and -help: usage was printed, nothing is wrong.
var errHelp = flag.ErrHelp

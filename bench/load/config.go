package load

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenarios, in the order a run performs them.
var knownScenarios = []string{"reject", "connect", "fanout", "churn", "echo", "channels"}

// moreScenarios are known too, but run only when named: they need more of
// the server than the every-scenario fakes have (storm: /disconnect and
// channel history).
var moreScenarios = []string{"storm"}

// knownServers maps a server name to its binary under the bin directory.
var knownServers = map[string]string{
	"turnstile": "turnstile",
	"gorilla":   "peer-gorilla",
	"gobwas":    "peer-gobwas",
	"nbio":      "peer-nbio",
	// Centrifuge's own protocol: the client speaks it (centrifuge.go).
	"centrifuge": "peer-centrifuge",
}

// maxConnsPerWorker leaves a worker room under the 20,000 fd limit for its
// pipes, HTTP connections and the runtime.
const maxConnsPerWorker = 18000

// Config is one invocation of turnstile-load. Its zero value is not valid;
// DefaultConfig and ParseFlags give a working one.
type Config struct {
	Scenarios []string // connect, reject, fanout, churn, echo, channels
	Servers   []string // servers to start in turn: turnstile, gorilla, gobwas, nbio, centrifuge
	BinDir    string   // where the server binaries are

	// A running server, used when Servers is empty.
	HTTPAddr  string // host:port of the HTTP API
	WSAddr    string // host:port of the WebSocket listener
	ServerPID int    // its pid, to read its memory; 0: unknown

	WSPath     string
	PublishKey string
	User       string
	Password   string

	Conns    int           // connections to open and hold (connect, fanout, echo)
	Rate     float64       // connects per second over all workers; 0: as fast as possible
	InFlight int           // most unanswered handshakes over all workers
	Hold     time.Duration // how long connect holds its connections
	Duration time.Duration // how long reject, churn and echo run
	Messages int           // fanout: publishes
	Interval time.Duration // fanout: pause between publishes
	ToUser   bool          // fanout: publish to the user instead of broadcasting
	Channels int           // channels: how many channels the connections spread over
	EchoSize int           // echo: bytes per message
	// MessageSize is fanout's published data in bytes (payload.go); 0:
	// the small {"seq","t"} object.
	MessageSize int
	// Compression is each mode to run every server in (-compression
	// off,on): true starts it with permessage-deflate (compression.go).
	Compression []bool
	Workers     int           // worker processes; 0: enough for Conns, at least 2
	Sources     int           // source addresses 127.0.0.2 … per run
	Timeout     time.Duration // bound on each scenario, after which it stops anyway
	Repeat      int           // rounds; the table shows the median of each metric
	PinServer   []int         // CPUs for started servers; workers get the others; empty: no pinning
	Procs       int           // GOMAXPROCS for started servers; 0: their default
	JSONPath    string        // where to write results as JSON; empty: nowhere
	HTMLPath    string        // where to write the HTML report; empty: nowhere
	// Thresholds fail the run (exit 99) when missed.
	Thresholds []Threshold
	LogDir     string // where started servers write their logs

	StormDrop   string // storm: auto, server (POST /disconnect) or client (the clients close)
	StormMissed int    // storm: publish rounds while the clients are away
	Curve       []int  // connection counts to run every scenario at, for a scaling table
	ProfileDir  string // where started turnstile servers write CPU profiles of the measured phase
	// Nodes are the cluster sizes to run (-nodes): with any above 1, each
	// size is that many turnstile nodes on one redis-server; [1]: one
	// server as usual.
	Nodes []int
}

// DefaultConfig is what the flags default to.
func DefaultConfig() Config {
	return Config{
		Scenarios:   []string{"connect"},
		BinDir:      "bin",
		WSPath:      "/ws",
		User:        "maggie",
		Password:    "secret",
		Conns:       1000,
		InFlight:    256,
		Hold:        3 * time.Second,
		Duration:    5 * time.Second,
		Messages:    20,
		Channels:    100,
		Interval:    100 * time.Millisecond,
		EchoSize:    64,
		Compression: []bool{false},
		Sources:     32,
		Timeout:     60 * time.Second,
		LogDir:      "bench/results",

		StormDrop:   "auto",
		StormMissed: 2,
		Nodes:       []int{1},
	}
}

// ParseFlags reads args (without the program name) into a validated Config.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("turnstile-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarios := fs.String("scenario", strings.Join(c.Scenarios, ","), "comma list of scenarios: connect, reject, fanout, churn, echo, channels (turnstile only), storm")
	servers := fs.String("servers", "", "comma list of servers to start in turn on loopback (turnstile, gorilla, gobwas, nbio, centrifuge); ratios are turnstile/peer")
	fs.StringVar(&c.BinDir, "bin", c.BinDir, "directory holding turnstile and peer-<name> binaries")
	fs.StringVar(&c.HTTPAddr, "http", "", "HTTP API address of a running server (without -servers)")
	fs.StringVar(&c.WSAddr, "ws", "", "WebSocket address of a running server (without -servers)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "pid of the running server, to read its memory from /proc")
	fs.StringVar(&c.WSPath, "ws-path", c.WSPath, "WebSocket path")
	fs.StringVar(&c.PublishKey, "publish-key", "", "publish key of a running server (default $TURNSTILE_PUBLISH_KEY; generated for started servers)")
	fs.StringVar(&c.User, "user", c.User, "user for /auth")
	fs.StringVar(&c.Password, "password", c.Password, "password for /auth")
	fs.IntVar(&c.Conns, "conns", c.Conns, "connections to open and hold (connect, fanout, echo)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "connects per second over all workers; 0: as fast as possible")
	fs.IntVar(&c.InFlight, "in-flight", c.InFlight, "most unanswered handshakes at once over all workers (the storm's width for reject and churn)")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "connect: how long to hold the connections once open")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "reject, churn, echo: how long to run")
	fs.IntVar(&c.Messages, "messages", c.Messages, "fanout: number of publishes")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "fanout: pause between publishes")
	fs.BoolVar(&c.ToUser, "to-user", false, "fanout: publish to the user instead of broadcasting")
	fs.IntVar(&c.Channels, "channels", c.Channels, "channels: connections spread over this many channels; each of -messages rounds publishes one message to every channel (in /publish batches)")
	fs.IntVar(&c.EchoSize, "echo-size", c.EchoSize, "echo: message size in bytes")
	fs.IntVar(&c.MessageSize, "message-size", 0, "fanout: published data of this many bytes, a JSON notification that compresses like real JSON (128..65536); 0: a small {seq,t} object")
	compression := fs.String("compression", "off", "permessage-deflate: off, on or off,on (both, side by side): started servers get -compression on and the clients offer it; gobwas and nbio cannot and are skipped")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes; 0: enough for -conns, at least 2")
	fs.IntVar(&c.Sources, "sources", c.Sources, "number of source addresses 127.0.0.2…")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on each scenario")
	fs.IntVar(&c.Repeat, "repeat", 1, "rounds, servers interleaved; the table shows each metric's median")
	fs.IntVar(&c.Procs, "server-procs", 0, "GOMAXPROCS for started servers (0: the Go default, the CPUs they may use)")
	pin := fs.String("pin", "", "comma list of CPUs for started servers (e.g. 0); the workers run on the other CPUs. Empty: no pinning")
	fs.StringVar(&c.JSONPath, "json", "", "write results as JSON to this file")
	fs.StringVar(&c.HTMLPath, "html", "", "write a self-contained HTML report with charts to this file")
	fs.Func("threshold", "pass/fail criterion, repeatable: [SERVER:]SCENARIO.METRIC<VALUE, e.g. 'connect.p99<200ms', 'reject.rate>20000' (METRIC: p50 p90 p95 p99 max rate, or a table name); a miss exits 99", func(s string) error {
		th, err := ParseThreshold(s)
		if err == nil {
			c.Thresholds = append(c.Thresholds, th)
		}
		return err
	})
	fs.StringVar(&c.LogDir, "log-dir", c.LogDir, "directory for the logs of started servers")
	fs.StringVar(&c.StormDrop, "storm-drop", c.StormDrop, "storm: how every connection is dropped: server (POST /disconnect of -user), client (the clients close), auto (server for turnstile, client for the peers)")
	fs.IntVar(&c.StormMissed, "storm-missed", c.StormMissed, "storm: publish rounds to every channel while the clients are away (recovered from history)")
	curve := fs.String("curve", "", "comma list of connection counts (e.g. 1000,5000,10000,19000): run the scenarios at each and print a scaling table")
	fs.StringVar(&c.ProfileDir, "server-cpuprofile", "", "directory: started turnstile servers write a CPU profile of each scenario's measured phase there (<server>-<scenario>.pprof)")
	nodes := fs.String("nodes", "1", "turnstile nodes on one redis-server they start with (connect, fanout, channels): tickets from one node, connections to the next, publishes at the first; a comma list (1,3) runs each size and prints the ratio to the first")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	for _, f := range splitList(*curve) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return c, fmt.Errorf("load: -curve %q: want a comma list of connection counts", *curve)
		}
		c.Curve = append(c.Curve, n)
	}
	c.Scenarios = splitList(*scenarios)
	c.Servers = splitList(*servers)
	var err error
	if c.Compression, err = parseCompression(*compression); err != nil {
		return c, err
	}
	if c.Nodes, err = parseNodes(*nodes); err != nil {
		return c, err
	}
	for _, f := range splitList(*pin) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n >= runtime.NumCPU() {
			return c, fmt.Errorf("load: -pin %q: want CPU numbers within 0..%d", *pin, runtime.NumCPU()-1)
		}
		c.PinServer = append(c.PinServer, n)
	}
	if len(c.PinServer) > 0 && len(c.workerCPUs()) == 0 {
		return c, fmt.Errorf("load: -pin %q leaves no CPU for the workers", *pin)
	}
	return c, c.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate reports the first thing wrong with c, or nil.
func (c *Config) Validate() error {
	if len(c.Scenarios) == 0 {
		return errUnknownScenario
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(knownScenarios, s) && !slices.Contains(moreScenarios, s) {
			return fmt.Errorf("%w: %q", errUnknownScenario, s)
		}
	}
	for _, s := range c.Servers {
		if _, ok := knownServers[s]; !ok {
			return fmt.Errorf("%w: %q", errUnknownServer, s)
		}
	}
	if len(c.Servers) == 0 {
		if c.HTTPAddr == "" || c.WSAddr == "" {
			return errNoTarget
		}
		for _, a := range []string{c.HTTPAddr, c.WSAddr} {
			if err := CheckLoopback(a); err != nil {
				return err
			}
		}
		if ap, err := netip.ParseAddrPort(c.WSAddr); err == nil && !ap.Addr().Unmap().Is4() {
			return errIPv6Client
		}
	}
	switch {
	case c.Conns < 1:
		return fmt.Errorf("load: -conns must be at least 1, not %d", c.Conns)
	case c.Procs < 0:
		return fmt.Errorf("load: -server-procs must not be negative")
	case c.Repeat < 0 || c.Repeat > 20:
		return fmt.Errorf("load: -repeat must be within 1..20")
	case c.InFlight < 1:
		return fmt.Errorf("load: -in-flight must be at least 1, not %d", c.InFlight)
	case c.Rate < 0:
		return fmt.Errorf("load: -rate must not be negative")
	case c.Sources < 1 || c.Sources > 250:
		return fmt.Errorf("load: -sources must be within 1..250, not %d", c.Sources)
	case c.Workers < 0:
		return fmt.Errorf("load: -workers must not be negative")
	case c.Timeout <= 0 || c.Duration <= 0 || c.Hold < 0:
		return fmt.Errorf("load: -timeout and -duration must be positive, -hold not negative")
	case c.Messages < 1 && (slices.Contains(c.Scenarios, "fanout") || slices.Contains(c.Scenarios, "channels")):
		return fmt.Errorf("load: -messages must be at least 1")
	case slices.Contains(c.Scenarios, "channels") && (c.Channels < 1 || c.Channels > 100000):
		return fmt.Errorf("load: -channels must be within 1..100000, not %d", c.Channels)
	case c.EchoSize < 16 || c.EchoSize > 1<<20:
		return fmt.Errorf("load: -echo-size must be within 16..1048576")
	case c.MessageSize != 0 && (c.MessageSize < minMessageSize || c.MessageSize > 1<<16):
		return fmt.Errorf("load: -message-size must be 0 or within %d..65536", minMessageSize)
	case c.compressing() && c.clustered():
		return fmt.Errorf("load: -compression on does not apply to -nodes")
	case !strings.HasPrefix(c.WSPath, "/"):
		return fmt.Errorf("load: -ws-path must start with /")
	}
	names, _ := c.runNames()
	if len(names) == 0 {
		return fmt.Errorf("load: -compression on leaves no server: only turnstile and gorilla compress")
	}
	if len(c.Servers) == 0 && !c.clustered() {
		names = nil // a running server: any SERVER: names it
	}
	for _, th := range c.Thresholds {
		if !slices.Contains(c.Scenarios, th.Scenario) {
			return fmt.Errorf("load: -threshold %q: scenario %s is not in -scenario", th.Raw, th.Scenario)
		}
		if th.Server != "" && len(names) > 0 && !slices.Contains(names, th.Server) {
			return fmt.Errorf("load: -threshold %q: server %s is not in -servers", th.Raw, th.Server)
		}
	}
	if err := c.validateNodes(); err != nil {
		return err
	}
	switch {
	case c.StormDrop != "auto" && c.StormDrop != dropServer && c.StormDrop != dropClient:
		return fmt.Errorf("load: -storm-drop must be auto, server or client, not %q", c.StormDrop)
	case c.StormMissed < 0 || c.StormMissed > 50:
		return fmt.Errorf("load: -storm-missed must be within 0..50 (history keeps 100 per channel)")
	case len(c.Curve) > 0 && (len(c.Thresholds) > 0 || c.clustered()):
		return fmt.Errorf("load: -threshold and -nodes do not apply to -curve")
	case c.ProfileDir != "" && c.clustered():
		return fmt.Errorf("load: -server-cpuprofile profiles one server, not -nodes")
	case slices.Contains(c.Scenarios, "storm") && (c.Channels < 1 || c.Channels > 100000):
		return fmt.Errorf("load: -channels must be within 1..100000, not %d", c.Channels)
	}
	if c.Conns > c.workers()*maxConnsPerWorker {
		return errTooManyPerWorker
	}
	return nil
}

// workers is the number of worker processes a run uses.
func (c *Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return max(2, (c.Conns+maxConnsPerWorker-1)/maxConnsPerWorker)
}

// workerCPUs is every CPU not given to the server, or nil without pinning.
func (c *Config) workerCPUs() []int {
	if len(c.PinServer) == 0 {
		return nil
	}
	var out []int
	for i := range runtime.NumCPU() {
		if !slices.Contains(c.PinServer, i) {
			out = append(out, i)
		}
	}
	return out
}

// CheckLoopback accepts host:port only when host is a loopback IP literal
// (127.0.0.0/8 or ::1) or "localhost". Names other than localhost are
// refused rather than resolved, so a load run can never leave the machine.
func CheckLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("load: address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%w: %q", errNotLoopback, hostport)
	}
	return nil
}

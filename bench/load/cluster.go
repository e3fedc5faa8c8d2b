package load

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster mode: -nodes N starts one redis-server and N turnstile nodes
// sharing it (one -ticket-key, JWT secret and publish key), so that a
// ticket issued by one node is redeemed at another and a publish at one
// node reaches subscribers on every node. -nodes 1,3 runs each size in
// turn and prints one table with the ratio of each size to the first.

// clusterScenarios are the scenarios a cluster runs: the ones whose
// connections are held, so that they can be spread over the nodes.
var clusterScenarios = []string{"connect", "fanout", "channels"}

// maxNodes bounds -nodes: each node is a process on a small machine.
const maxNodes = 16

// clusterPrefix names a cluster size in the table: turnstile@3.
const clusterPrefix = "turnstile@"

// parseNodes reads -nodes: a comma list of node counts, each 1..maxNodes,
// none twice.
func parseNodes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxNodes {
			return nil, fmt.Errorf("load: -nodes %q: want node counts within 1..%d, e.g. 3 or 1,3", s, maxNodes)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("load: -nodes %q: %d is given twice", s, n)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load: -nodes %q: want at least one node count", s)
	}
	return out, nil
}

// clustered reports whether the run starts clusters on Redis: when any
// size is above 1. Then every size, 1 included, runs on Redis, so that a
// ratio between sizes compares node counts, not brokers.
func (c *Config) clustered() bool {
	return slices.ContainsFunc(c.Nodes, func(n int) bool { return n > 1 })
}

// validateNodes checks what cluster mode needs.
func (c *Config) validateNodes() error {
	if !c.clustered() {
		return nil
	}
	if !slices.Equal(c.Servers, []string{"turnstile"}) {
		return fmt.Errorf("%w: -nodes %v needs -servers turnstile (only turnstile runs on Redis)", errClusterConfig, c.Nodes)
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(clusterScenarios, s) {
			return fmt.Errorf("%w: -nodes runs %s, not %q", errClusterConfig, strings.Join(clusterScenarios, ", "), s)
		}
	}
	return nil
}

// clusterNames are the table's columns, one per size: turnstile@1, turnstile@3.
func (c *Config) clusterNames() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = clusterPrefix + strconv.Itoa(n)
	}
	return out
}

// clusterSize reads the node count back from a column name.
func clusterSize(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, clusterPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// isClusterName reports whether name is a cluster size's column, so that
// a threshold may judge it (turnstile@3:fanout.p99<1s).
func isClusterName(name string) bool {
	_, ok := clusterSize(name)
	return ok
}

// clusterColors tell the sizes apart in the HTML report's charts.
var clusterColors = []string{"#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2"}

// clusterRatios are the ratio columns of a cluster table: every size
// divided by the first.
func clusterRatios(servers []string) []ratioColumn {
	if len(servers) < 2 {
		return nil
	}
	if _, ok := clusterSize(servers[0]); !ok {
		return nil
	}
	var out []ratioColumn
	for _, s := range servers[1:] {
		if _, ok := clusterSize(s); ok {
			out = append(out, ratioColumn{label: s + "/" + strings.TrimPrefix(servers[0], "turnstile"), num: s, den: servers[0]})
		}
	}
	return out
}

// cluster is what a cluster target holds besides its first node's
// addresses: every node and the Redis they share.
type cluster struct {
	nodes   []*target
	redis   *redisProc
	workers int // worker processes, a multiple of the node count
}

// startCluster starts redis-server and size turnstile nodes on it, and
// waits until every node's /readyz says it is ready (Redis connected).
// The target's addresses are node 0's: the run logs in and publishes there.
func startCluster(cfg *Config, name, scenario string) (*target, error) {
	size, ok := clusterSize(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a cluster size", errClusterConfig, name)
	}
	rp, err := startRedis(cfg)
	if err != nil {
		return nil, err
	}
	cl := &cluster{redis: rp, workers: clusterWorkers(cfg, size)}
	t := &target{name: name, cluster: cl}
	secrets := [3]string{randomHex(32), randomHex(32), randomHex(16)} // JWT, ticket MAC, publish key
	for i := range size {
		node, err := startNode(cfg, "turnstile", scenario, nodeOpts{
			logName:    fmt.Sprintf("%s-n%d", name, i+1),
			publishKey: secrets[2],
			args:       []string{"-redis", "redis://" + rp.addr},
			env:        []string{"TURNSTILE_JWT_SECRET=" + secrets[0], "TURNSTILE_TICKET_KEY=" + secrets[1]},
		})
		if err != nil {
			t.stop()
			return nil, fmt.Errorf("node %d of %d: %w", i+1, size, err)
		}
		cl.nodes = append(cl.nodes, node)
	}
	for i, node := range cl.nodes {
		if err := waitReady(node, 15*time.Second); err != nil {
			t.stop()
			return nil, fmt.Errorf("node %d of %d: %w", i+1, size, err)
		}
	}
	t.httpAddr, t.wsAddr, t.publishKey = cl.nodes[0].httpAddr, cl.nodes[0].wsAddr, secrets[2]
	t.pid = cl.nodes[0].pid // known pids: CPU is split into user and kernel
	return t, nil
}

// clusterWorkers is the worker count for one size: at least the run's and
// the largest size's, rounded up to a multiple of size so that every node
// gets as many connections.
func clusterWorkers(cfg *Config, size int) int {
	w := max(cfg.workers(), slices.Max(cfg.Nodes))
	return (w + size - 1) / size * size
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitReady polls the node's /readyz until it answers 200.
func waitReady(t *target, within time.Duration) error {
	hc := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Get("http://" + t.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load: %s not ready after %v (/readyz: %v); see %s", t.name, within, statusOf(resp, err), t.logPath)
		}
		select {
		case err := <-t.exited:
			return fmt.Errorf("load: %s exited (%v); see %s", t.name, err, t.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func statusOf(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// workerCount is how many workers a run against t starts.
func (t *target) workerCount(cfg *Config) int {
	if t.cluster != nil {
		return t.cluster.workers
	}
	return cfg.workers()
}

// jobAddrs are worker i's HTTP and WebSocket addresses: on a cluster it
// fetches its tickets from node i mod N and connects to node i+1 mod N,
// so every ticket is redeemed at a node other than its issuer's (N > 1).
func (t *target) jobAddrs(i int) (httpAddr, wsAddr string) {
	if t.cluster == nil {
		return t.httpAddr, t.wsAddr
	}
	ns := t.cluster.nodes
	return ns[i%len(ns)].httpAddr, ns[(i+1)%len(ns)].wsAddr
}

// nodeConns reads every node's open connections from its /metrics; nil
// for a single server.
func (t *target) nodeConns() []float64 {
	if t.cluster == nil {
		return nil
	}
	out := make([]float64, len(t.cluster.nodes))
	for i, n := range t.cluster.nodes {
		out[i], _ = n.metric("turnstile_open_connections")
	}
	return out
}

// cpu is the CPU time of every node, summed, with Redis's apart.
func (cl *cluster) cpu() cpuUsage {
	var u cpuUsage
	for _, n := range cl.nodes {
		v, _ := cpuTime(n.pid)
		u.user += v.user
		u.sys += v.sys
	}
	r, _ := cpuTime(cl.redis.pid())
	u.redis = r.user + r.sys
	return u
}

// rss is every node's resident memory, summed (Redis's not included).
func (cl *cluster) rss() int64 {
	var sum int64
	for _, n := range cl.nodes {
		v, _ := rssBytes(n.pid)
		sum += v
	}
	return sum
}

// stop ends every node, then Redis.
func (cl *cluster) stop() {
	for _, n := range cl.nodes {
		n.stop()
	}
	cl.nodes = nil
	cl.redis.stop()
}

// addCluster adds what only a cluster has: the connections each node held
// (min and max over the nodes) and Redis's CPU time per operation.
func (r *Result) addCluster(t *target, cpu cpuUsage, conns []float64) {
	if t.cluster == nil {
		return
	}
	if len(conns) > 0 {
		r.add("nodes", "", float64(len(conns)), false)
		r.add("open conns min/node", "", slices.Min(conns), false)
		r.add("open conns max/node", "", slices.Max(conns), false)
	}
	if r.ops > 0 {
		r.add("redis CPU/op", "µs", float64(cpu.redis)/1e3/float64(r.ops), true)
	}
	r.add("redis CPU", "s", cpu.redis.Seconds(), true)
}

// redisProc is a redis-server this run started: its own temporary
// directory, a free loopback port, nothing saved; stopped by pid.
type redisProc struct {
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *redisProc) pid() int { return r.cmd.Process.Pid }

// startRedis starts redis-server on a free 127.0.0.1 port and waits until
// it answers PING; a port taken between the pick and the bind is retried.
func startRedis(cfg *Config) (*redisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: redis-server not found (apt-get install redis-server)", errClusterConfig)
	}
	dir, err := os.MkdirTemp("", "turnstile-load-redis-")
	if err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		addr, err := freeAddr()
		if err != nil {
			last = err
			continue
		}
		_, port, _ := net.SplitHostPort(addr)
		r := &redisProc{addr: addr, dir: dir, done: make(chan struct{})}
		r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", dir,
			"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis.log"))
		r.cmd.Dir = dir
		if err := startPinned(r.cmd, cfg.PinServer); err != nil {
			last = err
			continue
		}
		go func() { _ = r.cmd.Wait(); close(r.done) }()
		if last = r.waitPing(10 * time.Second); last == nil {
			return r, nil
		}
		r.kill()
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("load: redis-server did not start: %v", last)
}

func (r *redisProc) waitPing(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("exited: %s", strings.TrimSpace(string(log)))
		default:
		}
		if r.ping() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG on %s within %v", r.addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING in RESP over a fresh connection.
func (r *redisProc) ping() error {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// stop ends redis-server (SIGTERM by pid, SIGKILL after 5 s) and removes
// its directory.
func (r *redisProc) stop() {
	if r == nil || r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.kill()
	}
	r.cmd = nil
	_ = os.RemoveAll(r.dir)
}

func (r *redisProc) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

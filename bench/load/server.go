package load

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// target is a server under test: started by the run or already running.
type target struct {
	name       string
	httpAddr   string
	wsAddr     string
	publishKey string
	pid        int // 0: unknown, no memory figures
	cmd        *exec.Cmd
	exited     chan error // receives once the started process ends
	logPath    string
	noMetrics  bool     // its /metrics failed once: do not ask again
	cluster    *cluster // -nodes: every node and their Redis; nil for one server
	profiling  bool     // started with TURNSTILE_CPUPROFILE: SIGUSR1 starts and stops the profile
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer runs the named server on fresh loopback ports with the dev
// user, a known publish key, long tickets (prefetching must not outlive
// them) and echo on (but for channels, whose subscribes are commands), and
// waits until both listeners accept.
func startServer(cfg *Config, name, scenario string) (*target, error) {
	return startNode(cfg, name, scenario, nodeOpts{})
}

// nodeOpts is what a cluster node adds to startServer's server.
type nodeOpts struct {
	logName    string   // names its log file instead of the server's name
	publishKey string   // shared by every node; empty: a fresh one
	args, env  []string // more flags and environment
}

// startNode is startServer with a cluster node's additions.
func startNode(cfg *Config, name, scenario string, opts nodeOpts) (*target, error) {
	server, deflate := splitDeflate(name)
	bin := filepath.Join(cfg.BinDir, knownServers[server])
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("load: server %s: %w (build it first: make build, or see bench/peers)", name, err)
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	wsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	t := &target{name: name, httpAddr: httpAddr, wsAddr: wsAddr, publishKey: hex.EncodeToString(k[:])}
	if opts.publishKey != "" {
		t.publishKey = opts.publishKey
	}
	args := []string{"-dev", "-http", httpAddr, "-ws", wsAddr, "-ws-path", cfg.WSPath,
		"-publish-key", t.publishKey, "-ticket-ttl", "10m"}
	if scenario != "channels" && scenario != "storm" { // under -echo no command is read: channels subscribe
		args = append(args, "-echo")
	}
	if deflate {
		args = append(args, "-compression", "on") // turnstile's flag, which the peers share
	}
	if server == "turnstile" {
		// Every load connection is the demo user: lift the per-user quotas.
		// Only turnstile has them; a peer refuses flags it does not know.
		args = append(args, "-max-conns-per-user", "0", "-max-tickets-per-user", "0")
	}
	t.cmd = exec.Command(bin, append(args, opts.args...)...)
	t.cmd.Env = append(append(os.Environ(), "TURNSTILE_PUBLISH_KEY="+t.publishKey), opts.env...)
	if err := t.profileTo(cfg, name, scenario); err != nil {
		return nil, err
	}
	if cfg.Procs > 0 {
		t.cmd.Env = append(t.cmd.Env, "GOMAXPROCS="+strconv.Itoa(cfg.Procs))
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, err
		}
		logName := name
		if opts.logName != "" {
			logName = opts.logName
		}
		t.logPath = filepath.Join(cfg.LogDir, logName+"-"+scenario+".log")
		f, err := os.Create(t.logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		t.cmd.Stdout, t.cmd.Stderr = f, f
	}
	if err := startPinned(t.cmd, cfg.PinServer); err != nil {
		return nil, err
	}
	t.pid = t.cmd.Process.Pid
	exited := make(chan error, 1)
	t.exited = exited
	go func() { exited <- t.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range []string{httpAddr, wsAddr} {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-exited:
				return nil, fmt.Errorf("load: server %s exited at start (%v); see %s", name, err, t.logPath)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.stop()
				return nil, fmt.Errorf("load: server %s not listening on %s after 15s; see %s", name, a, t.logPath)
			}
		}
	}
	return t, nil
}

// stop ends a server this run started: SIGTERM, then SIGKILL after 5s.
func (t *target) stop() {
	if t.cluster != nil {
		t.cluster.stop()
		return
	}
	if t.cmd == nil {
		return
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
	t.cmd = nil
}

// rssBytes reads the resident set size of pid from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseVmRSS finds "VmRSS: <n> kB" in the text of /proc/<pid>/status.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "VmRSS:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("load: no VmRSS line")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuUsage is CPU time a process has used: in its own code (user) and in
// the kernel on its behalf (sys).
// redis is, for a cluster, the CPU time of the Redis it shares, apart.
type cpuUsage struct{ user, sys, redis time.Duration }

func (u cpuUsage) sub(o cpuUsage) cpuUsage {
	return cpuUsage{u.user - o.user, u.sys - o.sys, u.redis - o.redis}
}

// cpuTime reads the CPU time pid has used, all threads.
func cpuTime(pid int) (cpuUsage, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuUsage{}, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatCPU(stat []byte) (cpuUsage, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return cpuUsage{}, fmt.Errorf("load: malformed /proc stat")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return cpuUsage{}, fmt.Errorf("load: short /proc stat")
	}
	var ticks [2]int64
	for k, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return cpuUsage{}, err
		}
		ticks[k] = n
	}
	tick := time.Second / clockTicks
	return cpuUsage{user: time.Duration(ticks[0]) * tick, sys: time.Duration(ticks[1]) * tick}, nil
}

// rss is the target's resident memory: from /proc when its pid is known,
// else from its Prometheus /metrics (process_resident_memory_bytes), else 0.
func (t *target) rss() int64 {
	if t.cluster != nil {
		return t.cluster.rss()
	}
	if t.pid != 0 {
		v, _ := rssBytes(t.pid)
		return v
	}
	v, _ := t.metric("process_resident_memory_bytes")
	return int64(v)
}

// cpu is the target's CPU time so far, from /proc or else from /metrics
// (process_cpu_seconds_total, counted as user time: it has no split).
func (t *target) cpu() cpuUsage {
	if t.cluster != nil {
		return t.cluster.cpu()
	}
	if t.pid != 0 {
		v, _ := cpuTime(t.pid)
		return v
	}
	v, _ := t.metric("process_cpu_seconds_total")
	return cpuUsage{user: time.Duration(v * float64(time.Second))}
}

// metric reads one unlabelled sample from the target's /metrics.
func (t *target) metric(name string) (float64, error) {
	if t.noMetrics {
		return 0, errNoMetric
	}
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + t.httpAddr + "/metrics")
	if err != nil {
		t.noMetrics = true
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.noMetrics = true
		return 0, errNoMetric
	}
	return parseMetric(body, name)
}

// parseMetric finds "name value" in Prometheus text exposition format.
func parseMetric(text []byte, name string) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == name {
			return strconv.ParseFloat(string(f[1]), 64)
		}
	}
	return 0, errNoMetric
}

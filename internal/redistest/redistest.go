// Package redistest starts real redis-server processes for tests: one
// standalone server, or a cluster of three masters, each on a free
// 127.0.0.1 port with its own temporary directory, stopped by pid when the
// test ends. It is imported by tests only.
//
// When redis-server (Debian's package) is missing, a test calling Start
// fails if the environment variable CI is set and is skipped otherwise,
// saying what to install.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one running redis-server.
type Server struct {
	Addr string // host:port on 127.0.0.1
	Port int
	Dir  string

	t    testing.TB
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// need returns the path of a binary or ends the test: failed under CI,
// skipped elsewhere.
func need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found: apt-get install redis-server"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a standalone redis-server with the extra config args
// (e.g. "--maxmemory", "10mb") and waits until it answers PING.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := need(t, "redis-server")
	dir := t.TempDir()
	s := &Server{t: t, Dir: dir}
	s.args = append([]string{bin,
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}, args...)
	s.startFreePort()
	t.Cleanup(s.Stop)
	return s
}

// startFreePort picks a free port and starts the process; a port taken by
// someone else between the pick and the bind is retried with another.
func (s *Server) startFreePort() {
	s.t.Helper()
	var lastErr error
	for range 5 {
		port := freePort(s.t)
		s.Port = port
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = s.launch(); lastErr == nil {
			return
		}
	}
	s.t.Fatalf("redis-server did not start: %v", lastErr)
}

// launch starts the process on s.Port and waits for PING.
func (s *Server) launch() error {
	args := append(append([]string(nil), s.args...), "--port", strconv.Itoa(s.Port))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("exited: %s", tail(string(log)))
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("no PONG within 10s on %s", s.Addr)
}

// ping sends PING with a plain connection (no client library).
func (s *Server) ping() error {
	r, err := s.Do("PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// Do sends one command over a fresh connection and returns the first line
// of the reply without its type byte (enough for PING, INFO's size line,
// FLUSHALL, CONFIG SET, DEBUG SLEEP). For INFO use Info.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(encode(args)); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line[1:], nil
}

// Info returns the INFO section's fields (e.g. Info("commandstats")).
func (s *Server) Info(section string) map[string]string {
	s.t.Helper()
	txt, err := s.Do("INFO", section)
	if err != nil {
		s.t.Fatalf("INFO %s: %v", section, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(txt, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Calls returns how many commands the server has run in total, from INFO
// commandstats (the sum of every cmdstat's calls), excluding the INFO
// commands themselves.
func (s *Server) Calls() int {
	s.t.Helper()
	total := 0
	for k, v := range s.Info("commandstats") {
		if !strings.HasPrefix(k, "cmdstat_") || k == "cmdstat_info" {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				c, _ := strconv.Atoi(n)
				total += c
			}
		}
	}
	return total
}

// Stop ends the server (SIGTERM by pid, then SIGKILL) and waits for it.
// Safe to call more than once.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.kill()
	}
	s.cmd = nil
}

// Kill ends the server at once (SIGKILL by pid): Redis is gone, its
// data with it.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.kill()
	s.cmd = nil
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts the server again on the same port and directory after
// Stop or Kill (its data is lost: nothing is saved).
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 { // the port may linger for a moment after a kill
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not restart on %s: %v", s.Addr, err)
}

// Cluster is three redis-server masters joined into a Redis Cluster.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		a[i] = n.Addr
	}
	return a
}

// StartCluster starts three cluster-enabled masters and joins them with
// redis-cli --cluster create, waiting until the cluster state is ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli := need(t, "redis-cli")
	c := &Cluster{}
	for range 3 {
		c.Nodes = append(c.Nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range c.Nodes {
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				ok = false
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster state not ok within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func encode(args []string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

package load

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"time"
)

// handshakeTimeout bounds one client handshake; past it the attempt counts
// as failed.
const handshakeTimeout = 10 * time.Second

// Run performs every scenario against every server, one server at a time,
// writes progress to stderr and the results table to stdout, and writes
// JSON when cfg.JSONPath is set. It stops by itself within about
// cfg.Timeout per scenario.
func Run(cfg Config, stdout, stderr io.Writer) error {
	if _, isFile := stderr.(*os.File); !isFile {
		// Workers' stderr is then copied by goroutines, one per worker.
		stderr = &syncWriter{w: stderr}
	}
	if len(cfg.Curve) > 0 {
		return runCurve(cfg, stdout, stderr)
	}
	var results []Result
	names, skipped := cfg.runNames()
	fmt.Fprint(stderr, skipNote(skipped))
	// Rounds interleave the servers, so that a noisy neighbour on a shared
	// machine disturbs each of them alike.
	for round := range max(1, cfg.Repeat) {
		for _, sc := range cfg.Scenarios {
			for _, name := range names {
				if why := unsupported(name, sc); why != "" {
					fmt.Fprintf(stderr, "== %s: %s skipped: %s\n", name, sc, why)
					continue
				}
				t, err := cfg.target(name, sc)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "== %s: %s (round %d)\n", name, sc, round+1)
				r, err := runScenario(&cfg, t, sc, stderr)
				t.stop()
				if err != nil {
					return fmt.Errorf("%s %s: %w", name, sc, err)
				}
				r.Round = round + 1
				results = append(results, r)
			}
		}
	}
	if cfg.Repeat > 1 {
		fmt.Fprintf(stdout, "medians of %d rounds\n", cfg.Repeat)
	}
	summary := medians(results)
	printTable(stdout, summary, names)
	verdicts := evaluate(cfg.Thresholds, summary, names)
	passed := printVerdicts(stdout, verdicts)
	if cfg.HTMLPath != "" {
		if err := writeHTML(cfg.HTMLPath, &cfg, results, names, verdicts); err != nil {
			return err
		}
	}
	if cfg.JSONPath != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.JSONPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if !passed {
		return ErrThresholds
	}
	return nil
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// target starts the named server, or describes the running one.
func (c *Config) target(name, scenario string) (*target, error) {
	if c.clustered() {
		return startCluster(c, name, scenario)
	}
	if len(c.Servers) > 0 {
		return startServer(c, name, scenario)
	}
	key := c.PublishKey
	if key == "" {
		key = os.Getenv("TURNSTILE_PUBLISH_KEY")
	}
	return &target{name: name, httpAddr: c.HTTPAddr, wsAddr: c.WSAddr, publishKey: key, pid: c.ServerPID}, nil
}

// sourcesFor gives worker i of n its share of 127.0.0.2 … 127.0.0.(1+count).
func sourcesFor(i, n, count int) []string {
	var out []string
	for k := range count {
		if count < n || k%n == i {
			out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + k)}).String())
		}
	}
	return out
}

// share splits total over n as evenly as possible; worker i gets share(i).
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// workerProc is one running worker process, seen from the coordinator.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	last  workerResult // from its latest progress or result
	kinds map[string]bool
}

func (w *workerProc) send(cmd string) { _, _ = io.WriteString(w.stdin, cmd+"\n") }

// coordinator runs one scenario's workers.
type coordinator struct {
	cfg     *Config
	name    string
	sc      string
	procs   []*workerProc
	events  chan event
	stderr  io.Writer
	lastLog time.Time
	done    chan struct{} // closed when the scenario is over

	// The measured phase's work over time, sampled as progress arrives.
	began    time.Time
	timeline []Sample
}

// sample records the work done so far, at most every 100 ms.
func (co *coordinator) sample(force bool) {
	if co.began.IsZero() {
		return
	}
	t := time.Since(co.began).Seconds()
	if n := len(co.timeline); !force && n > 0 && t-co.timeline[n-1].T < 0.1 {
		return
	}
	s := co.sum()
	ops := s.Messages
	if co.sc == "connect" {
		ops = s.Opened
	}
	co.timeline = append(co.timeline, Sample{T: t, Ops: ops})
}

func runScenario(cfg *Config, t *target, sc string, stderr io.Writer) (Result, error) {
	res := Result{Server: t.name, Scenario: sc}
	// Memory is measured from before the first login: an upper bound per
	// connection that includes issuing its ticket over HTTP (the same auth
	// code in every server), because the garbage of that phase would
	// otherwise be reused for connections and hide them.
	rssBefore := t.rss()
	api := newAPIClient(t.httpAddr, 2)
	token, err := api.login(cfg.User, cfg.Password)
	if err != nil {
		return res, err
	}
	n := t.workerCount(cfg)
	deadline := time.Now().Add(cfg.Timeout)
	co := &coordinator{cfg: cfg, name: t.name, sc: sc, events: make(chan event, 64), stderr: stderr, done: make(chan struct{})}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	defer co.kill()
	for i := range n {
		// The in-flight cap makes -rate 0 measure throughput rather than
		// the listen backlog overflowing.
		j := job{
			Scenario: sc, ID: i, HTTPAddr: t.httpAddr, WSAddr: t.wsAddr, WSPath: cfg.WSPath,
			Token: token, Sources: sourcesFor(i, n, cfg.Sources), Conns: share(cfg.Conns, n, i),
			Rate: cfg.Rate / float64(n), InFlight: max(1, share(cfg.InFlight, n, i)), Duration: cfg.Duration,
			EchoSize: cfg.EchoSize, Channels: cfg.Channels, MessageSize: cfg.MessageSize, HSTimeout: handshakeTimeout, Deadline: deadline.Add(15 * time.Second).UnixNano(),
			Storm: stormJob{Recover: stormRecovers(t.name)},
		}
		j.HTTPAddr, j.WSAddr = t.jobAddrs(i)
		_, j.Deflate = splitDeflate(t.name)
		j.Wire = wireFor(t.name)
		if sc == "reject" || sc == "churn" {
			j.Conns = j.InFlight
		}
		if j.Conns == 0 {
			continue
		}
		if err := co.start(self, j); err != nil {
			return res, err
		}
	}
	if err := co.waitAll("ready", deadline); err != nil {
		return res, err
	}
	cpuBefore, rssReady := t.cpu(), t.rss()
	var cpuAfter cpuUsage
	co.broadcast("go")
	t.profileMark() // starts the server's CPU profile, if any
	co.began = time.Now()
	co.sample(true)
	var rssAfter int64
	published := 0
	var storm stormRun
	switch sc {
	case "connect", "fanout", "echo", "channels", "storm":
		if err := co.waitAll("connected", deadline); err != nil {
			return res, err
		}
	}
	switch sc {
	case "connect":
		cpuAfter = t.cpu()
		settle := min(cfg.Hold, time.Second)
		time.Sleep(settle)
		rssAfter = t.rss()
		co.sleep(cfg.Hold-settle, deadline)
	case "fanout":
		user := ""
		if cfg.ToUser {
			user = cfg.User
		}
		cpuBefore = t.cpu() // the connects are not fan-out work
		for i := range cfg.Messages {
			if i > 0 {
				co.sleep(cfg.Interval, deadline)
			}
			if _, err := api.publish(t.publishKey, user, fanoutData(i, time.Now().UnixNano(), cfg.MessageSize)); err != nil {
				return res, err
			}
			published++
		}
		want := co.sum().Welcomed * int64(published)
		co.waitFor(func(r *workerResult) bool { return r.Messages >= want }, time.Now().Add(10*time.Second))
		cpuAfter = t.cpu()
	case "channels":
		cpuBefore = t.cpu()
		for i := range cfg.Messages {
			if i > 0 {
				co.sleep(cfg.Interval, deadline)
			}
			if err := api.publishChannels(t.publishKey, cfg.Channels, i); err != nil {
				return res, err
			}
			published++
		}
		want := co.sum().Subscribed * int64(published)
		co.waitFor(func(r *workerResult) bool { return r.Messages >= want }, time.Now().Add(10*time.Second))
		cpuAfter = t.cpu()
	case "storm":
		if storm, err = co.storm(api, t, stormRecovers(t.name), deadline); err != nil {
			return res, err
		}
		cpuBefore, cpuAfter = storm.cpuBefore, storm.cpuAfter
	case "echo", "reject", "churn":
		if sc == "echo" {
			cpuBefore = t.cpu()
		}
		if err := co.waitAll("done", deadline); err != nil {
			return res, err
		}
		cpuAfter = t.cpu()
	}
	t.profileMark() // and stops it
	nodeConns := t.nodeConns()
	co.broadcast("stop")
	if err := co.waitAll("result", time.Now().Add(15*time.Second)); err != nil {
		return res, err
	}
	co.sample(true)
	res.Timeline = co.timeline
	total := co.sum()
	res.fill(total, [3]int64{rssBefore, rssReady, rssAfter}, published)
	if sc == "storm" {
		res.fillStorm(total, storm)
	}
	res.addCPU(cpuAfter.sub(cpuBefore), t.pid != 0)
	res.addCluster(t, cpuAfter.sub(cpuBefore), nodeConns)
	res.addClientCPU(total.ClientUser, total.ClientSys)
	co.progress(true)
	return res, nil
}

func (co *coordinator) start(self string, j job) error {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = co.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := startPinned(cmd, co.cfg.workerCPUs()); err != nil {
		return err
	}
	p := &workerProc{cmd: cmd, stdin: stdin, kinds: map[string]bool{}}
	co.procs = append(co.procs, p)
	b, _ := json.Marshal(j)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		return err
	}
	id := len(co.procs) - 1
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ev.Worker = id
				select {
				case co.events <- ev:
				case <-co.done:
				}
			}
		}
		select {
		case co.events <- event{Kind: "exit", Worker: id}:
		case <-co.done:
		}
	}()
	return nil
}

// handle records one event; it returns an error for a worker's failure.
func (co *coordinator) handle(ev event) error {
	p := co.procs[ev.Worker]
	if ev.Stats != nil {
		p.last = *ev.Stats
	}
	switch ev.Kind {
	case "error":
		return fmt.Errorf("worker %d: %s", ev.Worker, ev.Err)
	case "exit":
		if !p.kinds["result"] {
			return fmt.Errorf("worker %d exited early", ev.Worker)
		}
	}
	p.kinds[ev.Kind] = true
	co.sample(false)
	co.progress(false)
	return nil
}

// waitAll waits until every worker has sent kind.
func (co *coordinator) waitAll(kind string, deadline time.Time) error {
	for {
		all := true
		for _, p := range co.procs {
			all = all && p.kinds[kind]
		}
		if all {
			return nil
		}
		select {
		case ev := <-co.events:
			if err := co.handle(ev); err != nil {
				return err
			}
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("%w waiting for workers to be %s (raise -timeout?)", errTimeout, kind)
		}
	}
}

// waitFor waits until the summed progress satisfies ok, or deadline.
func (co *coordinator) waitFor(ok func(*workerResult) bool, deadline time.Time) {
	for {
		s := co.sum()
		if ok(&s) {
			return
		}
		select {
		case ev := <-co.events:
			if co.handle(ev) != nil {
				return
			}
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

// sleep lets d pass while still taking progress events.
func (co *coordinator) sleep(d time.Duration, deadline time.Time) {
	until := time.Now().Add(d)
	if until.After(deadline) {
		until = deadline
	}
	co.waitFor(func(*workerResult) bool { return !time.Now().Before(until) }, until)
}

func (co *coordinator) broadcast(cmd string) {
	for _, p := range co.procs {
		p.send(cmd)
	}
}

// sum merges the latest figures of every worker.
func (co *coordinator) sum() workerResult {
	var t workerResult
	for _, p := range co.procs {
		t.merge(&p.last)
	}
	return t
}

func (co *coordinator) progress(final bool) {
	if !final && time.Since(co.lastLog) < time.Second {
		return
	}
	co.lastLog = time.Now()
	s := co.sum()
	fmt.Fprintf(co.stderr, "   [%s %s] dialed %d open %d rejected %d failed %d dropped %d messages %d\n",
		co.name, co.sc, s.Started, s.Opened, s.Rejected, s.Failed, s.Dropped, s.Messages)
}

// kill ends worker processes that are still running.
func (co *coordinator) kill() {
	close(co.done)
	for _, p := range co.procs {
		_ = p.stdin.Close()
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

func minNonZero(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func (r *workerResult) merge(o *workerResult) {
	r.Started += o.Started
	r.Opened += o.Opened
	r.Rejected += o.Rejected
	r.Failed += o.Failed
	r.Dropped += o.Dropped
	r.Messages += o.Messages
	r.Welcomed += o.Welcomed
	r.Subscribed += o.Subscribed
	r.Closed += o.Closed
	r.WireBytes += o.WireBytes
	r.Deflated += o.Deflated
	r.DeflateConns += o.DeflateConns
	r.Storm.merge(&o.Storm)
	r.ClientUser += o.ClientUser
	r.ClientSys += o.ClientSys
	r.FirstDial = minNonZero(r.FirstDial, o.FirstDial)
	r.Begin = minNonZero(r.Begin, o.Begin)
	r.LastOpen = max(r.LastOpen, o.LastOpen)
	r.LastMsg = max(r.LastMsg, o.LastMsg)
	r.End = max(r.End, o.End)
	r.Handshake.Merge(&o.Handshake)
	r.Latency.Merge(&o.Latency)
	for k, v := range o.Statuses {
		if r.Statuses == nil {
			r.Statuses = map[int]int64{}
		}
		r.Statuses[k] += v
	}
	for k, v := range o.Spread {
		if r.Spread == nil {
			r.Spread = map[int64]int64{}
		}
		r.Spread[k] = max(r.Spread[k], v)
	}
	for k, v := range o.Errors {
		if r.Errors == nil {
			r.Errors = map[string]int64{}
		}
		r.Errors[k] += v
	}
}

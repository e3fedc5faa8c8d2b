package load

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/turnstile-push/turnstile/bench/load/cwire"
)

// workerEnv marks a process as a worker: the binary re-executes itself with
// it set, reads a job on stdin and answers with event lines on stdout.
const workerEnv = "TURNSTILE_LOAD_WORKER"

// job is what the coordinator asks of one worker.
type job struct {
	Scenario string        `json:"scenario"`
	ID       int           `json:"id"`
	HTTPAddr string        `json:"http"`
	WSAddr   string        `json:"ws"`
	WSPath   string        `json:"ws_path"`
	Token    string        `json:"token"`
	Sources  []string      `json:"sources"`
	Conns    int           `json:"conns"` // connections, or in flight for reject and churn
	Rate     float64       `json:"rate"`  // connects per second for this worker; 0: unpaced
	InFlight int           `json:"in_flight"`
	Duration time.Duration `json:"duration"`
	EchoSize int           `json:"echo_size"`
	Channels int           `json:"channels"`
	// Deflate offers permessage-deflate; MessageSize is fanout's
	// -message-size, to rebuild and check every delivered payload.
	Deflate     bool          `json:"deflate"`
	MessageSize int           `json:"message_size"`
	Storm       stormJob      `json:"storm"`
	HSTimeout   time.Duration `json:"handshake_timeout"`
	// Wire is the server's client protocol: "" for turnstile's,
	// wireCentrifuge for Centrifuge's (centrifuge.go).
	Wire     string `json:"wire"`
	Deadline int64  `json:"deadline"` // Unix ns after which the worker gives up
}

// event is one line from a worker: ready, connected, progress, done, result
// or error.
type event struct {
	Kind   string        `json:"kind"`
	Worker int           `json:"worker"`
	Err    string        `json:"err,omitempty"`
	Stats  *workerResult `json:"stats,omitempty"`
}

// workerResult is what a worker counted. Times are Unix ns.
type workerResult struct {
	Started    int64 `json:"started"`
	Opened     int64 `json:"opened"`
	Rejected   int64 `json:"rejected"`   // non-101 answers
	Failed     int64 `json:"failed"`     // errors and timeouts before opening
	Dropped    int64 `json:"dropped"`    // closed by the server after opening
	Messages   int64 `json:"messages"`   // deliveries, echoes, churn cycles or rejections inside the measured window
	Welcomed   int64 `json:"welcomed"`   // connections that got their welcome
	Subscribed int64 `json:"subscribed"` // channels: connections whose subscribe was answered
	Closed     int64 `json:"closed"`     // churn: cycles the client closed
	// Of fanout's and channels' deliveries: their bytes on the wire
	// (frame headers and payloads as read, before inflating), and how
	// many came compressed; and the connections that agreed deflate.
	WireBytes    int64      `json:"wire_bytes"`
	Deflated     int64      `json:"deflated"`
	DeflateConns int64      `json:"deflate_conns"`
	Storm        stormStats `json:"storm"`
	// The worker's own CPU time in the measured phase, ns.
	ClientUser int64         `json:"client_user"`
	ClientSys  int64         `json:"client_sys"`
	FirstDial  int64         `json:"first_dial"`
	LastOpen   int64         `json:"last_open"`
	LastMsg    int64         `json:"last_msg"`
	Begin      int64         `json:"begin"` // measured phase of reject, churn, echo
	End        int64         `json:"end"`
	Handshake  Histogram     `json:"handshake"` // dial → response
	Latency    Histogram     `json:"latency"`   // publish → receive, echo round trip, churn cycle
	Statuses   map[int]int64 `json:"statuses,omitempty"`
	// Spread maps a publish's send time to the latest delivery of it seen
	// (fanout): the time the whole fan-out took.
	Spread map[int64]int64  `json:"spread,omitempty"`
	Errors map[string]int64 `json:"errors,omitempty"`
}

func (r *workerResult) addError(err error) {
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	if len(r.Errors) < 16 {
		r.Errors[err.Error()]++
	} else {
		r.Errors["other"]++
	}
}

// IsWorker reports whether this process was started as a load worker.
func IsWorker() bool { return os.Getenv(workerEnv) != "" }

// RunWorker runs one job read from stdin, writing events to stdout, and
// returns the process exit code.
func RunWorker(stdin io.Reader, stdout io.Writer) int {
	raiseFDLimit()
	in := bufio.NewReader(stdin)
	enc := json.NewEncoder(stdout)
	line, err := in.ReadBytes('\n')
	var j job
	if err == nil {
		err = json.Unmarshal(line, &j)
	}
	if err != nil {
		_ = enc.Encode(event{Kind: "error", Err: "reading job: " + err.Error()})
		return 1
	}
	w := &worker{job: j, enc: enc, cmds: make(chan string, 4)}
	go func() {
		for {
			l, err := in.ReadString('\n')
			if len(l) > 1 {
				w.cmds <- l[:len(l)-1]
			}
			if err != nil {
				w.cmds <- "stop" // the coordinator is gone
				return
			}
		}
	}()
	if err := w.run(); err != nil {
		_ = enc.Encode(event{Kind: "error", Worker: j.ID, Err: err.Error()})
		return 1
	}
	return 0
}

// worker drives one scenario over one engine.
type worker struct {
	job     job
	enc     *json.Encoder
	cmds    chan string
	eng     *engine
	res     workerResult
	tickets []string
	fresh   chan string // churn: tickets fetched while running
	api     *apiClient
	echoMsg []byte
	sendMsg []byte // echoMsg wrapped for the server's protocol
	phase   int    // 0 connecting, 1 measuring, 2 finished
	storm   *stormState
	cpuFrom cpuUsage
	cpuDone bool
	expect  map[int64][]byte // fanout: the published data by its stamp
}

// cpuMark starts measuring the worker's own CPU time; cpuStop adds what
// it used since into the result, so the load generator's cost per
// operation can be read beside the server's.
func (w *worker) cpuMark() { w.cpuFrom, w.cpuDone = selfCPU(), false }

func (w *worker) cpuStop() {
	used := selfCPU().sub(w.cpuFrom)
	w.res.ClientUser += int64(used.user)
	w.res.ClientSys += int64(used.sys)
	w.cpuDone = true
}

func (w *worker) emit(kind string) {
	// Every event carries the counts, so that the coordinator never acts
	// on stale ones (fanout's expected deliveries come from "connected").
	ev := event{Kind: kind, Worker: w.job.ID, Stats: &w.res}
	_ = w.enc.Encode(ev)
}

func (w *worker) run() error {
	j := w.job
	var sources []netip.Addr
	for _, s := range j.Sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return err
		}
		sources = append(sources, a)
	}
	eng, err := newEngine(j.WSAddr, j.WSPath, sources, w)
	if err != nil {
		return err
	}
	w.eng = eng
	eng.nodelay = j.Scenario == "echo"
	eng.deflate = j.Deflate
	defer eng.shutdown()
	w.api = newAPIClient(j.HTTPAddr, 8)
	switch j.Scenario {
	case "connect", "fanout", "echo", "channels", "storm":
		if w.tickets, err = w.api.tickets(j.Token, j.Conns, 8); err != nil {
			return err
		}
	case "churn":
		w.fresh = make(chan string, 4096)
		stop := make(chan struct{})
		defer close(stop)
		for range 4 {
			go w.fetchTickets(stop)
		}
	}
	if j.Scenario == "echo" {
		w.echoMsg = make([]byte, j.EchoSize)
	}
	if j.Scenario == "storm" {
		stop := make(chan struct{})
		defer close(stop)
		w.storm = newStormState(j.Conns)
		for range 8 {
			go w.stormTickets(stop)
		}
	}
	w.emit("ready")
	if err := w.await("go"); err != nil {
		return err
	}
	w.loop()
	w.emit("result")
	return nil
}

// await blocks until the coordinator sends cmd.
func (w *worker) await(cmd string) error {
	for c := range w.cmds {
		if c == cmd {
			return nil
		}
		if c == "stop" {
			return fmt.Errorf("stopped before %q", cmd)
		}
	}
	return nil
}

func (w *worker) fetchTickets(stop chan struct{}) {
	for {
		t, err := w.api.ticket(w.job.Token)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case w.fresh <- t:
		case <-stop:
			return
		}
	}
}

// randomTicket is well-formed (22 characters of base64url) but unknown.
func randomTicket() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// loop runs the engine until the scenario ends or the coordinator says stop.
func (w *worker) loop() {
	j := w.job
	start := time.Now().UnixNano()
	lastProgress, lastExpire := start, start
	inFlight := 0
	w.cpuMark()
	defer func() {
		if !w.cpuDone {
			w.cpuStop() // fanout measures until the coordinator stops it
		}
	}()
	for {
		w.eng.poll(2)
		now := time.Now().UnixNano()
		select {
		case c := <-w.cmds:
			if c == "stop" {
				return
			}
			if w.storm != nil {
				w.stormCommand(c, now)
			}
		default:
		}
		if now > j.Deadline {
			w.res.addError(errTimeout)
			return
		}
		if now-lastExpire > int64(200*time.Millisecond) {
			w.eng.expire(now, j.HSTimeout)
			lastExpire = now
		}
		inFlight = int(w.res.Started - w.res.Opened - w.res.Rejected - w.res.Failed)
		if j.Scenario == "churn" {
			inFlight = int(w.res.Started - w.res.Closed - w.res.Rejected - w.res.Failed - w.res.Dropped)
		}
		switch j.Scenario {
		case "connect", "fanout", "echo", "channels", "storm":
			allowed := int64(j.Conns)
			if j.Rate > 0 {
				allowed = min(allowed, 1+int64(j.Rate*float64(now-start)/1e9))
			}
			for w.res.Started < allowed && inFlight < j.InFlight {
				w.dial(w.tickets[w.res.Started], int(w.res.Started), now)
				inFlight++
			}
			// Ready when every connection is welcomed (so registered in
			// the server's hub) or lost.
			ready := w.res.Welcomed
			if j.Scenario == "channels" || (j.Scenario == "storm" && j.Storm.Recover) {
				ready = w.res.Subscribed // registered in the channel, not only welcomed
			}
			if w.phase == 0 && ready+w.res.Rejected+w.res.Failed+w.res.Dropped >= int64(j.Conns) {
				w.phase = 1
				if j.Scenario == "connect" {
					w.cpuStop()
				} else {
					w.cpuMark() // the connects are not fan-out or echo work
				}
				w.emit("connected")
				if j.Scenario == "storm" {
					w.storm.live = true // from now on a lost connection comes back
				}
				if j.Scenario == "echo" {
					w.res.Begin = now
					w.eng.each(func(c *wsconn) { w.sendEcho(c, now) })
				}
			}
			if j.Scenario == "echo" && w.phase == 1 && now-w.res.Begin > int64(j.Duration) {
				w.res.End = now
				w.phase = 2
				w.cpuStop()
				w.emit("done")
			}
		case "reject", "churn":
			if w.phase == 0 {
				w.res.Begin, w.phase = now, 1
			}
			if w.phase == 1 && now-w.res.Begin > int64(j.Duration) {
				w.res.End, w.phase = now, 2
				w.cpuStop()
				w.emit("done")
			}
			for w.phase == 1 && inFlight < j.Conns {
				t := ""
				if j.Scenario == "reject" {
					t = randomTicket()
				} else {
					select {
					case t = <-w.fresh:
					default:
					}
					if t == "" {
						break
					}
				}
				w.dial(t, 0, now)
				inFlight++
			}
		}
		if w.storm != nil {
			w.stormRedial(now)
		}
		if now-lastProgress > int64(500*time.Millisecond) {
			w.emit("progress")
			lastProgress = now
		}
	}
}

func (w *worker) dial(ticket string, id int, now int64) {
	if w.res.FirstDial == 0 {
		w.res.FirstDial = now
	}
	w.res.Started++
	w.eng.dial(ticket, id, now)
}

func (w *worker) sendEcho(c *wsconn, now int64) {
	b := w.echoMsg[:0]
	b = fmt.Appendf(b, `{"t":%d,"p":"`, now)
	for len(b) < w.job.EchoSize-2 {
		b = append(b, 'x')
	}
	b = append(b, `"}`...)
	w.echoMsg = b
	if w.job.Wire == wireCentrifuge {
		w.sendMsg = cwire.Send(w.sendMsg[:0], b)
		b = w.sendMsg
	}
	w.eng.send(c, opText, b, now)
}

func (w *worker) onOpen(c *wsconn, now int64) {
	w.res.Opened++
	if c.deflate {
		w.res.DeflateConns++
	}
	w.res.LastOpen = now
	w.res.Handshake.Record(now - c.start)
	if w.job.Wire == wireCentrifuge {
		w.eng.send(c, opText, cwire.Connect, now) // its reply is the welcome
	}
}

func (w *worker) onReject(c *wsconn, status int, now int64) {
	w.res.Rejected++
	if w.res.Statuses == nil {
		w.res.Statuses = map[int]int64{}
	}
	w.res.Statuses[status]++
	if w.storm != nil {
		w.stormRetry(c, now)
	}
	// Only answers inside the measured window count towards the rate;
	// the ones still in flight when it closes arrive after End.
	if w.job.Scenario == "reject" && w.phase == 1 {
		w.res.Messages++
		w.res.Handshake.Record(now - c.start)
	}
}

func (w *worker) onMessage(c *wsconn, op byte, payload []byte, rx received, now int64) {
	if w.job.Wire == wireCentrifuge {
		w.centrifugeMessage(c, op, payload, rx, now)
		return
	}
	w.onPayload(c, op, payload, rx, now)
}

// onPayload handles one message in turnstile's protocol, or what
// centrifugeMessage made of one in Centrifuge's: the welcome (whose type
// it checked), then message data.
func (w *worker) onPayload(c *wsconn, op byte, payload []byte, rx received, now int64) {
	if !c.welcome {
		// The contract: the first frame after 101 is the welcome.
		c.welcome = true
		w.res.Welcomed++
		if w.job.Wire == "" && !bytes.Contains(payload, welcomeType) {
			w.res.addError(errNoWelcome)
		}
		if w.job.Scenario == "churn" {
			// A cycle is complete: ticket, connect, welcome.
			if w.phase == 1 {
				w.res.Messages++
				w.res.Latency.Record(now - c.start)
			}
			w.eng.close(c)
			w.res.Closed++
		}
		if w.storm != nil {
			w.stormWelcome(c, now)
		}
		if w.job.Scenario == "channels" {
			// Spread the connections over the channels, across workers.
			k := (int64(w.job.ID)*7919 + w.res.Welcomed) % int64(w.job.Channels)
			w.eng.send(c, opText, w.subscribeCommand(int(k), 0, ""), now)
		}
		return
	}
	if w.storm != nil {
		w.stormMessage(c, payload, now)
		return
	}
	if w.job.Scenario == "channels" && bytes.Contains(payload, subscribedType) {
		w.res.Subscribed++
		return
	}
	switch w.job.Scenario {
	case "fanout", "channels":
		if t, ok := extractStamp(payload); ok {
			if w.job.Scenario == "fanout" && !w.published(payload, t) {
				w.res.addError(errPayload)
				return
			}
			w.res.Messages++
			w.res.WireBytes += int64(rx.wire)
			if rx.deflated {
				w.res.Deflated++
			}
			w.res.LastMsg = now
			w.res.Latency.Record(now - t)
			if w.res.Spread == nil {
				w.res.Spread = map[int64]int64{}
			}
			if now-t > w.res.Spread[t] {
				w.res.Spread[t] = now - t
			}
		}
	case "echo":
		if t, ok := extractStamp(payload); ok && w.phase == 1 {
			w.res.Messages++
			w.res.Latency.Record(now - t)
			w.sendEcho(c, now)
		}
	}
}

// published reports whether payload carries exactly the data the
// coordinator published with stamp t: rebuilt from its seq (payload.go),
// once per publish, so that a delivery is counted only when every byte,
// inflated or not, arrived intact.
func (w *worker) published(payload []byte, t int64) bool {
	want, ok := w.expect[t]
	if !ok {
		seq, found := extractInt(payload, seqKey)
		if !found {
			return false
		}
		if w.expect == nil {
			w.expect = map[int64][]byte{}
		}
		want = fanoutData(int(seq), t, w.job.MessageSize)
		w.expect[t] = want
	}
	return bytes.Contains(payload, want)
}

var welcomeType = []byte(`"type":"welcome"`)

var subscribedType = []byte(`"type":"subscribed"`)

func (w *worker) onFail(c *wsconn, err error, now int64) {
	if w.storm != nil && w.stormLost(c, err, now) {
		return
	}
	if c.opened {
		w.res.Dropped++
	} else {
		w.res.Failed++
	}
	w.res.addError(err)
}

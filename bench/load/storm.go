package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/turnstile-push/turnstile/bench/load/cwire"
)

// The storm scenario: every connection subscribed, all dropped at once,
// every client back with a fresh ticket and, on turnstile, its channel
// resubscribed from its last position. This file holds the worker's
// bookkeeping (one stormClient per client, across its connections) and
// the coordinator's sequence.

// Drop modes: the server closes every connection (turnstile's
// POST /disconnect of the demo user, whom every load connection is), or
// the clients close their own (the peers have no /disconnect).
const (
	dropServer = "server"
	dropClient = "client"
)

// stormMaxTries bounds the reconnect attempts of one client after the drop;
// past it the client counts as lost.
const stormMaxTries = 5

// stormJob is the storm part of a worker's job.
type stormJob struct {
	// Recover: the server has channels (turnstile): subscribe after each
	// welcome, resubscribe with since, count offsets. Without it a client
	// is back when its welcome arrives.
	Recover bool `json:"recover,omitempty"`
}

// stormStats is what a worker counted of the storm. Times are Unix ns.
type stormStats struct {
	Reconnects   int64     `json:"reconnects"`    // dials after the drop
	Back         int64     `json:"back"`          // clients back (and recovered) after the drop, and not dropped again since
	Redropped    int64     `json:"redropped"`     // times a client that was back was dropped again
	NotRecovered int64     `json:"not_recovered"` // resubscribes answered recovered:false
	Lost         int64     `json:"lost"`          // clients that gave up after stormMaxTries
	Retries      int64     `json:"retries"`       // failed reconnect attempts retried
	Gaps         int64     `json:"gaps"`          // offsets skipped between two received messages
	Dups         int64     `json:"dups"`          // messages at or below the last offset seen
	TicketErrs   int64     `json:"ticket_errs"`   // /ws_ticket failures (retried)
	LastBack     int64     `json:"last_back"`     // when the last client came back
	Recovery     Histogram `json:"recovery"`      // per client: lost → back and recovered
}

func (s *stormStats) merge(o *stormStats) {
	s.Reconnects += o.Reconnects
	s.Back += o.Back
	s.Redropped += o.Redropped
	s.NotRecovered += o.NotRecovered
	s.Lost += o.Lost
	s.Retries += o.Retries
	s.Gaps += o.Gaps
	s.Dups += o.Dups
	s.TicketErrs += o.TicketErrs
	s.LastBack = max(s.LastBack, o.LastBack)
	s.Recovery.Merge(&o.Recovery)
}

// stormClient is one client's memory across its connections: what a real
// client keeps to resubscribe (channel, last offset, epoch).
type stormClient struct {
	channel int
	last    int64  // highest offset received
	epoch   string // from the latest subscribed reply; "" before the first
	lostAt  int64  // when its connection was lost; 0 while up
	back    bool   // counted in Back: lost in the storm, then back and recovered
	target  int64  // offset to reach before it counts as recovered; -1 until subscribed
	tries   int
	conn    *wsconn
}

// stormState is a worker's storm bookkeeping. need and got are the only
// parts shared with the ticket goroutines.
type stormState struct {
	clients []stormClient
	live    bool          // the initial connects are done: a loss is the storm
	need    chan int      // clients waiting for a ticket
	got     chan ticketed // their tickets
}

type ticketed struct {
	id     int
	ticket string
}

func newStormState(n int) *stormState {
	s := &stormState{clients: make([]stormClient, n), need: make(chan int, n), got: make(chan ticketed, n)}
	for i := range s.clients {
		s.clients[i].target = -1
	}
	return s
}

// stormTickets fetches a fresh ticket for each client that needs one, as a
// real client does before every reconnect.
func (w *worker) stormTickets(stop chan struct{}) {
	for {
		var id int
		select {
		case id = <-w.storm.need:
		case <-stop:
			return
		}
		if !w.stormTicket(id, stop) {
			return
		}
	}
}

// stormTicket fetches client id's ticket, retrying; false when stopped.
func (w *worker) stormTicket(id int, stop chan struct{}) bool {
	for {
		t, err := w.api.ticket(w.job.Token)
		select {
		case w.storm.got <- ticketed{id, t}: // "" on an error: counted on the loop
		case <-stop:
			return false
		}
		if err == nil {
			return true
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-stop:
			return false
		}
	}
}

// stormRedial dials every client whose ticket has arrived.
func (w *worker) stormRedial(now int64) {
	for {
		select {
		case t := <-w.storm.got:
			if t.ticket == "" {
				w.res.Storm.TicketErrs++
				continue
			}
			w.res.Storm.Reconnects++
			w.dial(t.ticket, t.id, now)
		default:
			return
		}
	}
}

// stormCommand handles the coordinator's "drop": the client-side drop,
// every connection closed at once by its client.
func (w *worker) stormCommand(cmd string, now int64) {
	if cmd != "drop" || !w.storm.live {
		return
	}
	w.eng.each(func(c *wsconn) {
		if c.opened {
			w.eng.close(c)
			w.stormDown(c.id, now)
		}
	})
}

// stormDown marks client id lost and asks for its ticket.
func (w *worker) stormDown(id int, now int64) {
	sc := &w.storm.clients[id]
	if sc.back {
		// Back, then dropped again (a close that raced its return): it
		// counts as back only once it is back again.
		sc.back = false
		w.res.Storm.Back--
		w.res.Storm.Redropped++
	}
	if sc.lostAt == 0 {
		sc.lostAt = now
		sc.tries = 0
	}
	sc.conn, sc.target = nil, -1
	sc.tries++
	if sc.tries > stormMaxTries {
		w.res.Storm.Lost++
		return
	}
	w.storm.need <- id
}

// stormLost handles a connection lost after the initial connects: the
// client comes back. It reports whether it took the event.
func (w *worker) stormLost(c *wsconn, err error, now int64) bool {
	if !w.storm.live {
		return false
	}
	if c.opened {
		w.res.Dropped++
	} else {
		w.res.Failed++
		w.res.Storm.Retries++
		w.res.addError(err)
	}
	w.stormDown(c.id, now)
	return true
}

// stormRetry handles a reconnect answered with something other than 101.
func (w *worker) stormRetry(c *wsconn, now int64) {
	if w.storm.live {
		w.res.Storm.Retries++
		w.stormDown(c.id, now)
	}
}

// stormWelcome subscribes the client's channel, from its last position
// when it has one; without channels the client is back.
func (w *worker) stormWelcome(c *wsconn, now int64) {
	sc := &w.storm.clients[c.id]
	sc.conn = c
	if !w.job.Storm.Recover {
		w.stormBack(sc, now)
		return
	}
	if sc.epoch == "" {
		// Spread the connections over the channels, across workers.
		sc.channel = int((int64(w.job.ID)*7919 + int64(c.id)) % int64(max(1, w.job.Channels)))
	}
	w.eng.send(c, opText, w.subscribeCommand(sc.channel, sc.last, sc.epoch), now)
}

// subscribeCommand is the command subscribing to channel load:<k> in the
// job's protocol, from offset in epoch when epoch is not "".
func (w *worker) subscribeCommand(k int, offset int64, epoch string) []byte {
	channel := "load:" + strconv.Itoa(k)
	if w.job.Wire == wireCentrifuge {
		return cwire.Subscribe(nil, 2, channel, uint64(offset), epoch)
	}
	if epoch == "" {
		return fmt.Appendf(nil, `{"type":"subscribe","id":1,"channel":%q}`, channel)
	}
	return fmt.Appendf(nil, `{"type":"subscribe","id":1,"channel":%q,"since":{"offset":%d,"epoch":%s}}`,
		channel, offset, strconv.Quote(epoch))
}

// subscribedReply is the part of a subscribed frame the storm reads.
type subscribedReply struct {
	Type      string `json:"type"`
	Offset    int64  `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
}

var offsetKey = []byte(`"offset":`)

// stormMessage reads a turnstile frame after the welcome: the subscribed
// reply, or a channel message.
func (w *worker) stormMessage(c *wsconn, payload []byte, now int64) {
	if bytes.Contains(payload, subscribedType) {
		var r subscribedReply
		if json.Unmarshal(payload, &r) != nil {
			w.res.addError(errFrame)
			return
		}
		w.stormSubscribed(c, r.Offset, r.Epoch, r.Recovered, now)
		return
	}
	if !bytes.Contains(payload, messageType) {
		return
	}
	if off, ok := extractInt(payload, offsetKey); ok {
		w.stormPublication(c, off, payload, now)
	}
}

// stormSubscribed takes a subscribe's answer: the channel's top and epoch,
// and, when the subscribe asked to recover, whether it did (nil: it did
// not ask). The client is back once it has every offset up to top.
func (w *worker) stormSubscribed(c *wsconn, top int64, epoch string, recovered *bool, now int64) {
	sc := &w.storm.clients[c.id]
	first := sc.epoch == ""
	if recovered != nil && !*recovered {
		// The client would reload its state from its backend: it
		// starts again from the channel's top.
		w.res.Storm.NotRecovered++
		sc.last = top
	}
	sc.epoch, sc.target = epoch, top
	if first {
		sc.last = top
		w.res.Subscribed++
	}
	w.stormCheck(sc, now)
}

// stormPublication checks a channel publication's offset against the
// client's last: a duplicate, the next one, or one after a gap. data
// holds its stamp, for the latency.
func (w *worker) stormPublication(c *wsconn, off int64, data []byte, now int64) {
	sc := &w.storm.clients[c.id]
	switch {
	case off <= sc.last:
		w.res.Storm.Dups++
	default:
		w.res.Storm.Gaps += off - sc.last - 1
		sc.last = off
		w.res.Messages++
		w.res.LastMsg = now
		if t, ok := extractStamp(data); ok {
			w.res.Latency.Record(now - t)
		}
	}
	w.stormCheck(sc, now)
}

var messageType = []byte(`"type":"message"`)

// stormCheck counts the client back once it is subscribed again and has
// every missed message.
func (w *worker) stormCheck(sc *stormClient, now int64) {
	if sc.lostAt != 0 && sc.target >= 0 && sc.last >= sc.target {
		w.stormBack(sc, now)
	}
}

func (w *worker) stormBack(sc *stormClient, now int64) {
	if sc.lostAt == 0 {
		return
	}
	sc.back = true
	w.res.Storm.Back++
	w.res.Storm.LastBack = max(w.res.Storm.LastBack, now)
	w.res.Storm.Recovery.Record(now - sc.lostAt)
	sc.lostAt = 0
}

// The storm's latency is each client's time from its loss until it is back
// and recovered; its rate, clients back per second after the drop. So
// thresholds ("storm.p99<3s", "storm.rate>1000") and the HTML report
// read them as any scenario's.
func init() {
	latencyPrefix["storm"] = "back"
	rateMetric["storm"] = "reconnects/s"
}

// stormRun is what the coordinator's storm sequence measured.
type stormRun struct {
	clients   int64 // connected (and subscribed) before the drop
	rounds    int   // publish rounds to every channel in all
	dropAt    int64 // Unix ns when the drop was asked
	mode      string
	cpuBefore cpuUsage
	cpuAfter  cpuUsage
}

// storm runs the sequence once every worker is connected: one publish
// round (every client gets a position), the drop, -storm-missed rounds
// published while the clients are away, the wait until every client is
// back and recovered, and one last round, live.
func (co *coordinator) storm(api *apiClient, t *target, recover bool, deadline time.Time) (stormRun, error) {
	cfg := co.cfg
	s := co.sum()
	run := stormRun{clients: s.Welcomed, mode: cfg.stormDrop(t.name)}
	if recover {
		run.clients = s.Subscribed
	}
	publish := func() error {
		if !recover {
			return nil
		}
		if err := api.publishChannels(t.publishKey, cfg.Channels, run.rounds); err != nil {
			return err
		}
		run.rounds++
		return nil
	}
	delivered := func(timeout time.Duration) {
		if recover {
			want := run.clients * int64(run.rounds)
			co.waitFor(func(r *workerResult) bool { return r.Messages >= want }, time.Now().Add(timeout))
		}
	}
	if err := publish(); err != nil {
		return run, err
	}
	delivered(10 * time.Second)
	run.cpuBefore = t.cpu()
	run.dropAt = time.Now().UnixNano()
	if run.mode == dropServer {
		n, err := api.disconnect(t.publishKey, cfg.User)
		if err != nil {
			return run, err
		}
		fmt.Fprintf(co.stderr, "   [%s storm] POST /disconnect closed %d connections\n", co.name, n)
	} else {
		co.broadcast("drop")
	}
	for range cfg.StormMissed {
		if err := publish(); err != nil {
			return run, err
		}
	}
	co.waitFor(func(r *workerResult) bool { return r.Storm.Back+r.Storm.Lost >= run.clients }, deadline)
	run.cpuAfter = t.cpu()
	if err := publish(); err != nil {
		return run, err
	}
	// Clients told recovered:false never get the gap: do not wait for it.
	wait := 10 * time.Second
	if co.sum().Storm.NotRecovered > 0 {
		wait = time.Second
	}
	delivered(wait)
	return run, nil
}

// fillStorm turns the storm's figures into metrics. The work unit of its
// CPU figures is one client back: its /ws_ticket, handshake, welcome,
// resubscribe and replay, and its share of the drop.
func (r *Result) fillStorm(t workerResult, run stormRun) {
	st := &t.Storm
	r.Errors = t.Errors
	r.ops = st.Back
	r.add("clients", "", float64(run.clients), false)
	r.add("back", "", float64(st.Back), false)
	if st.LastBack > run.dropAt && st.Back > 0 {
		r.add("all back", "ms", ms(time.Duration(st.LastBack-run.dropAt)), true)
		r.add("reconnects/s", "1/s", perSecond(st.Back, run.dropAt, st.LastBack), false)
	}
	r.addLatency(&st.Recovery) // "back p50" … "back max"
	r.add("failed", "", float64(st.Lost+max(0, run.clients-st.Back-st.Lost)), true)
	r.add("retries", "", float64(st.Retries+st.TicketErrs), true)
	r.add("dropped again", "", float64(st.Redropped), true)
	if run.rounds > 0 {
		want := run.clients * int64(run.rounds)
		r.add("messages missed", "", float64(max(0, want-t.Messages)), true)
		r.add("duplicates", "", float64(st.Dups), true)
		r.add("not recovered", "", float64(st.NotRecovered), true)
	}
}

// stormDrop is how the storm drops the clients of the named server.
func (c *Config) stormDrop(server string) string {
	switch {
	case c.StormDrop != "auto":
		return c.StormDrop
	case stormRecovers(server) && wireFor(server) == "": // turnstile, with or without +deflate
		return dropServer
	default:
		return dropClient
	}
}

// stormRecovers tells whether the named server has channels and history
// (turnstile, or a running server, taken to be turnstile; centrifuge,
// through its own subscribe with recovery).
func stormRecovers(name string) bool {
	server, _ := splitDeflate(name)
	return server == "turnstile" || server == "server" || server == "centrifuge"
}

// disconnect closes every connection of user (POST /disconnect) and returns
// how many the server closed.
func (a *apiClient) disconnect(key, user string) (int, error) {
	var r struct {
		Disconnected int `json:"disconnected"`
	}
	err := a.do("POST", "/disconnect", key, map[string]string{"user": user}, &r)
	return r.Disconnected, err
}

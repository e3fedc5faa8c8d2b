package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The browser client (clients/js, embedded as the -dev demo page's script)
// in headless Chromium against the real binary.

// sdkEvent is one entry of the demo page's demo.events: a client event.
type sdkEvent struct {
	Kind      string          `json:"kind"`
	State     string          `json:"state"`
	Reason    string          `json:"reason"`
	Code      int             `json:"code"`
	Status    int             `json:"status"`
	Message   string          `json:"message"`
	RetryInMs *int            `json:"retryInMs"`
	Channel   string          `json:"channel"`
	Offset    *int            `json:"offset"`
	Missed    int             `json:"missed"`
	Recovered *bool           `json:"recovered"`
	Data      json.RawMessage `json:"data"`
}

// openDemo opens s's demo page (with query, e.g. "?maxBackoffMs=500") in a new browser.
func openDemo(t *testing.T, s *testServer, query string) *browser {
	t.Helper()
	b := startBrowser(t)
	b.do(map[string]any{"op": "open", "url": s.HTTP + "/" + query})
	return b
}

// mark is the number of client events so far, for waitEvent.
func (b *browser) mark() int {
	b.t.Helper()
	var n int
	b.eval("demo.events.length", &n)
	return n
}

// waitEvent waits for the first event after mark for which the JS
// condition on e holds, and returns it.
func (b *browser) waitEvent(mark int, cond string, timeout time.Duration) sdkEvent {
	b.t.Helper()
	var e sdkEvent
	b.wait(fmt.Sprintf("demo.events.slice(%d).find((e) => %s)", mark, cond), timeout, &e)
	return e
}

// events returns the client events after mark for which cond holds.
func (b *browser) events(mark int, cond string) []sdkEvent {
	b.t.Helper()
	var es []sdkEvent
	b.eval(fmt.Sprintf("demo.events.slice(%d).filter((e) => %s)", mark, cond), &es)
	return es
}

// offsets lists the offsets of the messages received on channel, in order.
func (b *browser) offsets(channel string) []int {
	b.t.Helper()
	var out []int
	for _, e := range b.events(0, fmt.Sprintf("e.kind === 'message' && e.channel === %q", channel)) {
		if e.Offset != nil {
			out = append(out, *e.Offset)
		}
	}
	return out
}

// connectDemo clicks Connect and waits for the welcome.
func (b *browser) connectDemo() {
	b.t.Helper()
	m := b.mark()
	b.do(map[string]any{"op": "click", "sel": "#connect"})
	b.waitEvent(m, "e.kind === 'welcome'", 20*time.Second)
}

// subscribeDemo subscribes through the page's form and waits for the reply.
func (b *browser) subscribeDemo(channel string) sdkEvent {
	b.t.Helper()
	m := b.mark()
	b.do(map[string]any{"op": "fill", "sel": "#channel", "value": channel})
	b.do(map[string]any{"op": "click", "sel": "#sub"})
	return b.waitEvent(m, fmt.Sprintf("e.kind === 'subscribed' && e.channel === %q", channel), 20*time.Second)
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestBrowserReceivesPush: log in, connect, one socket however often
// Connect is pressed, a push shown, Disconnect, and no console error; with
// the ticket in the URL and in Sec-WebSocket-Protocol.
func TestBrowserReceivesPush(t *testing.T) {
	for _, ticketIn := range []string{"query", "protocol"} {
		t.Run(ticketIn, func(t *testing.T) { testBrowserReceivesPush(t, ticketIn) })
	}
}

func testBrowserReceivesPush(t *testing.T, ticketIn string) {
	s := startBinary(t)
	b := openDemo(t, s, "?ticketIn="+ticketIn)
	m := b.mark()
	// Two presses of Connect and a direct connect() in one go: one socket.
	b.do(map[string]any{"op": "eval", "js": `(() => { const c = document.getElementById("connect"); c.click(); demo.client.connect(); c.click(); })()`})
	b.waitEvent(m, "e.kind === 'welcome'", 20*time.Second)
	if n := s.Publish(t, `{"user":"maggie","data":"pushed-to-the-browser"}`); n != 1 {
		t.Fatalf("recipients %d, want 1", n)
	}
	e := b.waitEvent(m, "e.kind === 'message'", 20*time.Second)
	if string(e.Data) != `"pushed-to-the-browser"` {
		t.Fatalf("message data %s", e.Data)
	}
	var shown bool
	b.eval(`document.getElementById("log").textContent.includes("pushed-to-the-browser")`, &shown)
	if !shown {
		t.Fatal("the push is not shown in the page's log")
	}
	if w := b.events(0, "e.kind === 'welcome'"); len(w) != 1 {
		t.Fatalf("%d welcomes, want 1: Connect pressed twice opened two sockets", len(w))
	}
	m = b.mark()
	b.do(map[string]any{"op": "click", "sel": "#disconnect"})
	e = b.waitEvent(m, "e.kind === 'state'", 10*time.Second)
	if e.State != "disconnected" || e.Reason != "client" || e.RetryInMs != nil {
		t.Fatalf("after Disconnect: %+v", e)
	}
	st := b.stats()
	if st.Requests["/ws_ticket"] != 1 || st.Requests["/auth"] != 1 {
		t.Fatalf("requests %v, want one /auth and one /ws_ticket", st.Requests)
	}
	if len(st.ConsoleErrors) > 0 || len(st.PageErrors) > 0 {
		t.Fatalf("console errors %q, page errors %q", st.ConsoleErrors, st.PageErrors)
	}
}

// TestBrowserChannels: subscribe through the page, receive with channel and
// offset, unsubscribe and receive no more.
func TestBrowserChannels(t *testing.T) {
	s := startBinary(t)
	b := openDemo(t, s, "")
	b.connectDemo()
	if e := b.subscribeDemo("news"); e.Offset == nil || *e.Offset != 0 {
		t.Fatalf("subscribed %+v, want offset 0 on a fresh server", e)
	}
	if n := s.Publish(t, `{"channel":"news","data":"one"}`); n != 1 {
		t.Fatalf("publish to news reached %d connections, want the page's 1", n)
	}
	s.Publish(t, `{"channel":"news","data":"two"}`)
	b.wait("demo.events.filter((e) => e.kind === 'message' && e.channel === 'news').length >= 2", 20*time.Second, nil)
	if got := b.offsets("news"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("news offsets %v, want [1 2]", got)
	}
	var shown bool
	b.eval(`document.getElementById("log").textContent.includes('news #2  "two"')`, &shown)
	if !shown {
		t.Fatal("the page does not show channel and offset")
	}
	b.do(map[string]any{"op": "click", "sel": "#subs button"})
	// The server stops sending: publishes reach no connection once the
	// unsubscribe command is in.
	for i := 0; s.Publish(t, `{"channel":"news","data":"after"}`) != 0; i++ {
		if i == 50 {
			t.Fatal("the server still sends news to the page 5 s after Unsubscribe")
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := b.mark()
	s.Publish(t, `{"user":"maggie","data":"marker"}`)
	b.waitEvent(m, `e.kind === 'message' && e.data === "marker"`, 20*time.Second)
	if got := b.offsets("news"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("news offsets %v after unsubscribe, want [1 2]", got)
	}
	if st := b.stats(); len(st.ConsoleErrors) > 0 || len(st.PageErrors) > 0 {
		t.Fatalf("console errors %q, page errors %q", st.ConsoleErrors, st.PageErrors)
	}
}

// TestBrowserServerRestart: the server stopped (SIGTERM: a 1001 "server
// shutting down" to every client; SIGKILL: the links just die) and started
// again, its embedded history gone with it: the page reconnects, a fresh
// ticket per attempt, and reports recovered:false for the channel and the
// personal one.
func TestBrowserServerRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			secret := "restart-test-secret-0123456789abcdef" // tokens outlive the restart, as in production
			s := startBinary(t, "-jwt-secret", secret)
			b := openDemo(t, s, "?maxBackoffMs=1000&shutdownSpreadMs=3000")
			b.connectDemo()
			b.subscribeDemo("news")
			s.Publish(t, `{"channel":"news","data":1}`)
			s.Publish(t, `{"user":"maggie","data":"p1"}`)
			b.wait("demo.events.filter((e) => e.kind === 'message').length >= 2", 20*time.Second, nil)

			m := b.mark()
			s.Signal(t, sig)
			e := b.waitEvent(m, "e.kind === 'state' && e.state === 'disconnected'", 20*time.Second)
			switch {
			case e.RetryInMs == nil:
				t.Fatalf("after %v: %+v, want a retry", sig, e)
			case sig == syscall.SIGTERM && (e.Reason != "server" || e.Code != 1001 || e.Message != "server shutting down" || *e.RetryInMs >= 3000):
				t.Fatalf("after SIGTERM: %+v, want server 1001 and a retry spread below 3 s", e)
			case sig == syscall.SIGKILL && e.Reason != "network":
				t.Fatalf("after SIGKILL: %+v, want network", e)
			}
			s.Wait(t, 20*time.Second)
			time.Sleep(1500 * time.Millisecond) // let a few attempts fail against the dead server
			addr := strings.TrimPrefix(s.HTTP, "http://")
			s2 := startBinary(t, "-jwt-secret", secret, "-http", addr)
			b.waitEvent(m, "e.kind === 'recoveryFailed' && e.channel === '#maggie'", 30*time.Second)
			b.waitEvent(m, "e.kind === 'recoveryFailed' && e.channel === 'news'", 20*time.Second)
			// After SIGKILL the retries (caps 0.5 s, 1 s) fail while the
			// server is down; after SIGTERM the first retry is spread over
			// 3 s and may already find the new server.
			connecting := len(b.events(0, "e.kind === 'state' && e.state === 'connecting'"))
			least := 3
			if sig == syscall.SIGTERM {
				least = 2
			}
			if st := b.stats(); st.Requests["/ws_ticket"] != connecting || connecting < least {
				t.Fatalf("%d attempts, %d /ws_ticket calls: want one fresh ticket per attempt, and at least %d attempts", connecting, st.Requests["/ws_ticket"], least)
			}
			// The new history starts at 1 again and is delivered (not taken for a repeat).
			m = b.mark()
			s2.Publish(t, `{"channel":"news","data":"after"}`)
			e = b.waitEvent(m, "e.kind === 'message' && e.channel === 'news'", 20*time.Second)
			if e.Offset == nil || *e.Offset != 1 {
				t.Fatalf("first message after the restart: %+v", e)
			}
		})
	}
}

// TestBrowserRecoversMissed: connections lost without a restart (POST
// /disconnect; a TCP link cut with no close frame) while messages are
// published: the reconnect recovers every missed message exactly once, in
// order, on a channel and on the personal channel.
func TestBrowserRecoversMissed(t *testing.T) {
	for _, how := range []string{"disconnect", "tcp-drop"} {
		t.Run(how, func(t *testing.T) {
			proxy := newTCPProxy(t)
			s := startBinary(t, "-ws-url", "ws://"+proxy.Addr()+"/ws")
			proxy.SetTarget(strings.TrimSuffix(strings.TrimPrefix(s.WS, "ws://"), "/ws"))
			b := openDemo(t, s, "?maxBackoffMs=500")
			b.connectDemo()
			b.subscribeDemo("news")
			s.Publish(t, `{"channel":"news","data":1}`)
			s.Publish(t, `{"user":"maggie","data":"p1"}`)
			b.wait("demo.events.filter((e) => e.kind === 'message').length >= 2", 20*time.Second, nil)

			// The server stays up; reconnects are turned away until the
			// missed messages are published.
			proxy.Pause()
			m := b.mark()
			if how == "disconnect" {
				var out struct{ Disconnected int }
				if code := s.do(t, "POST", "/disconnect", s.PublishKey, `{"user":"maggie"}`, &out); code != http.StatusOK || out.Disconnected != 1 {
					t.Fatalf("POST /disconnect: %d %+v, want the page's 1 connection", code, out)
				}
			} else if n := proxy.Cut(); n != 1 {
				t.Fatalf("cut %d connections, want 1", n)
			}
			e := b.waitEvent(m, "e.kind === 'state' && e.state === 'disconnected'", 20*time.Second)
			wantReason, wantCode := "network", 1006
			if how == "disconnect" {
				wantReason, wantCode = "server", 4001
			}
			if e.Reason != wantReason || e.Code != wantCode {
				t.Fatalf("disconnected %+v, want %s %d", e, wantReason, wantCode)
			}
			for i := 2; i <= 6; i++ {
				s.Publish(t, fmt.Sprintf(`{"channel":"news","data":%d}`, i))
			}
			s.Publish(t, `{"user":"maggie","data":"p2"}`)
			s.Publish(t, `{"user":"maggie","data":"p3"}`)
			proxy.Resume()

			rn := b.waitEvent(m, "e.kind === 'recovered' && e.channel === 'news'", 30*time.Second)
			rp := b.waitEvent(m, "e.kind === 'recovered' && e.channel === '#maggie'", 20*time.Second)
			if rn.Missed != 5 || rp.Missed != 2 {
				t.Fatalf("recovered news %d, #maggie %d; want 5 and 2", rn.Missed, rp.Missed)
			}
			s.Publish(t, `{"channel":"news","data":7}`)
			b.wait("demo.events.filter((e) => e.kind === 'message' && e.channel === 'news').length >= 7", 20*time.Second, nil)
			time.Sleep(300 * time.Millisecond) // a duplicate, if any, would arrive right behind
			if got := b.offsets("news"); !slices.Equal(got, seq(1, 7)) {
				t.Fatalf("news offsets %v, want 1..7 exactly once", got)
			}
			if got := b.offsets("#maggie"); !slices.Equal(got, seq(1, 3)) {
				t.Fatalf("#maggie offsets %v, want 1..3 exactly once", got)
			}
			if lost := b.events(0, "e.kind === 'recoveryFailed'"); len(lost) != 0 {
				t.Fatalf("recovery failed: %+v", lost)
			}
		})
	}
}

// TestBrowserUnauthorized: a token the ticket endpoint refuses ends in
// unauthorized after one /ws_ticket call, not in a retry storm.
func TestBrowserUnauthorized(t *testing.T) {
	s := startBinary(t)
	b := openDemo(t, s, "?minBackoffMs=50&maxBackoffMs=100")
	b.do(map[string]any{"op": "route", "path": "/auth", "status": 200, "body": `{"token":"not.a-real.token","expires":4102444800}`})
	m := b.mark()
	b.do(map[string]any{"op": "click", "sel": "#connect"})
	e := b.waitEvent(m, "e.kind === 'state' && e.state === 'disconnected'", 20*time.Second)
	if e.Reason != "unauthorized" || e.Status != http.StatusUnauthorized || e.RetryInMs != nil {
		t.Fatalf("got %+v, want unauthorized (401) without a retry", e)
	}
	time.Sleep(3 * time.Second) // with 100 ms backoff a storm would be ~30 calls by now
	if st := b.stats(); st.Requests["/ws_ticket"] != 1 {
		t.Fatalf("%d /ws_ticket calls, want 1", st.Requests["/ws_ticket"])
	}
	var reason string
	b.eval(`document.getElementById("reason").textContent`, &reason)
	if !strings.Contains(reason, "unauthorized") {
		t.Fatalf("the page shows %q", reason)
	}
	// Connect again asks again (once).
	m = b.mark()
	b.do(map[string]any{"op": "click", "sel": "#connect"})
	b.waitEvent(m, "e.kind === 'state' && e.reason === 'unauthorized'", 20*time.Second)
	if st := b.stats(); st.Requests["/ws_ticket"] != 2 {
		t.Fatalf("%d /ws_ticket calls after a second Connect, want 2", st.Requests["/ws_ticket"])
	}
}

// TestBrowserDeadLink: the server stops reading (SIGSTOP) with the TCP
// connection open: the client says network within its heartbeat bound
// (defaults: 4 s ping interval + 4 s pong timeout ≤ 10 s), and reconnects
// once the server runs again.
func TestBrowserDeadLink(t *testing.T) {
	s := startBinary(t)
	b := openDemo(t, s, "")
	b.connectDemo()
	// Longer than ping interval + pong timeout: unanswered pings would have
	// ended the connection by now.
	time.Sleep(9 * time.Second)
	if st := b.events(0, "e.kind === 'state' && e.state === 'disconnected'"); len(st) != 0 {
		t.Fatalf("disconnected on a live link: %+v", st)
	}
	m := b.mark()
	s.Signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	start := time.Now()
	e := b.waitEvent(m, "e.kind === 'state' && e.state === 'disconnected'", 11*time.Second)
	took := time.Since(start)
	if e.Reason != "network" || e.Message != "heartbeat timeout" {
		t.Fatalf("got %+v, want network (heartbeat timeout)", e)
	}
	if took > 10*time.Second {
		t.Fatalf("dead link noticed after %v, bound 10s", took)
	}
	t.Logf("dead link noticed after %v", took)
	s.Signal(t, syscall.SIGCONT)
	b.waitEvent(m, "e.kind === 'welcome'", 30*time.Second)
}

// TestBrowserRefresh: before the session ends the client sends a refresh
// with a fresh ticket (of a renewed token, which the demo page gets by
// logging in again) and the server moves the end: no reconnect, no 1008.
func TestBrowserRefresh(t *testing.T) {
	s := startBinary(t, "-jwt-ttl", "40s")
	b := openDemo(t, s, "")
	start := time.Now()
	b.connectDemo()
	e := b.waitEvent(0, "e.kind === 'refreshed'", 35*time.Second)
	var refreshed struct{ Expires int64 }
	b.eval("demo.events.find((e) => e.kind === 'refreshed')", &refreshed)
	// The first token ends start+40 s; the refresh is due 20 s before that
	// and its ticket is of a token that ends 40 s after it was issued.
	if min := start.Add(55 * time.Second).Unix(); refreshed.Expires < min {
		t.Fatalf("refreshed until %d, want at least %d (the session was not extended): %+v", refreshed.Expires, min, e)
	}
	if d := b.events(0, "e.kind === 'state' && e.state !== 'connected' && e.state !== 'connecting'"); len(d) != 0 {
		t.Fatalf("disconnected around the refresh: %+v", d)
	}
	if st := b.stats(); st.Requests["/auth"] != 2 || st.Requests["/ws_ticket"] != 2 {
		t.Fatalf("requests %v: want a second login and ticket for the refresh", st.Requests)
	}
}

// TestBrowserRefusedUpgrade: the ticket endpoint accepts the token but the
// upgrade is refused (here 403: the page's Origin is not allowed), which a
// browser shows as 1006 before open, like a network failure. The client
// reports network, "connection failed before open", and retries with a
// fresh ticket at the backoff's pace, not in a storm.
func TestBrowserRefusedUpgrade(t *testing.T) {
	s := startBinary(t, "-origins", "https://elsewhere.example")
	b := openDemo(t, s, "?minBackoffMs=200&maxBackoffMs=1000")
	m := b.mark()
	b.do(map[string]any{"op": "click", "sel": "#connect"})
	e := b.waitEvent(m, "e.kind === 'state' && e.state === 'disconnected'", 20*time.Second)
	if e.Reason != "network" || e.Message != "connection failed before open" || e.RetryInMs == nil {
		t.Fatalf("refused upgrade: %+v, want network before open, retried", e)
	}
	time.Sleep(4 * time.Second)
	b.do(map[string]any{"op": "click", "sel": "#disconnect"})
	attempts := len(b.events(0, "e.kind === 'state' && e.state === 'connecting'"))
	// Caps 0.2, 0.4, 0.8, 1, 1, … s: about 11 attempts in 4 s on average
	// (a storm would be hundreds); each with its own ticket.
	if st := b.stats(); attempts < 3 || attempts > 25 || st.Requests["/ws_ticket"] != attempts {
		t.Fatalf("%d attempts and %d /ws_ticket calls in 4 s", attempts, st.Requests["/ws_ticket"])
	}
	if w := b.events(0, "e.kind === 'welcome'"); len(w) != 0 {
		t.Fatalf("admitted from a refused Origin: %+v", w)
	}
}

// TestBrowserCompression: Chromium against the binary with -compression on.
// Chromium offers permessage-deflate with client_max_window_bits and
// compresses everything it sends once the extension is granted, so the
// page's subscribe command arrives compressed; pushes above
// -compression-min-bytes leave compressed (one frame per publish); both
// ways the data comes through exactly and the page logs no error.
func TestBrowserCompression(t *testing.T) {
	s := startBinary(t, "-compression", "on", "-compression-min-bytes", "64")
	b := openDemo(t, s, "")
	b.connectDemo()
	if m := s.metrics(t); !strings.Contains(m, "turnstile_compressed_connections 1\n") {
		t.Fatalf("Chromium's connection did not negotiate permessage-deflate:\n%s", grepLines(m, "turnstile_compressed_connections"))
	}
	if e := b.subscribeDemo("news"); e.Offset == nil {
		t.Fatalf("subscribed %+v: the compressed subscribe command was not understood", e)
	}
	big := `"` + strings.Repeat("a compressible notification body, ", 600) + `"` // ~20 KiB, fragmented by nobody: one frame
	for _, p := range []struct{ body, channel, data string }{
		{`{"user":"maggie","data":"short"}`, "", `"short"`}, // below the threshold: plain
		{`{"user":"maggie","data":` + big + `}`, "", big},
		{`{"channel":"news","data":` + big + `}`, "news", big},
		{`{"broadcast":true,"data":{"n":1,"pad":` + big + `}}`, "", `{"n":1,"pad":` + big + `}`},
	} {
		m := b.mark()
		if n := s.Publish(t, p.body); n != 1 {
			t.Fatalf("publish reached %d connections, want the page's 1", n)
		}
		e := b.waitEvent(m, "e.kind === 'message'", 20*time.Second)
		var got, want any
		if json.Unmarshal(e.Data, &got) != nil || json.Unmarshal([]byte(p.data), &want) != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("message of %d bytes arrived as %d bytes: %.80s…", len(p.data), len(e.Data), e.Data)
		}
		if e.Channel != p.channel && !(p.channel == "" && strings.HasPrefix(e.Channel, "#")) {
			t.Fatalf("message on channel %q, want %q", e.Channel, p.channel)
		}
	}
	if st := b.stats(); len(st.ConsoleErrors) > 0 || len(st.PageErrors) > 0 {
		t.Fatalf("console errors %q, page errors %q", st.ConsoleErrors, st.PageErrors)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gorilla/websocket"
	"github.com/turnstile-push/turnstile/bench/load/cwire"
	"github.com/turnstile-push/turnstile/bench/peers/internal/peer"
)

// TestCentrifugeWire runs a real centrifuge node behind this peer's
// handler and reads what it sends with the load client's own parsing
// (bench/load/cwire): the connect reply as the welcome, publications to
// the user and to all, an echoed async message, and a ping answered so
// that the connection outlives its pong timeout.
func TestCentrifugeWire(t *testing.T) {
	p := startPeer(t)
	if _, resp, err := websocket.DefaultDialer.Dial(p.wsURL+"AAAAAAAAAAAAAAAAAAAAAA", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown ticket: %v %v, want 401", resp, err)
	}
	c := p.connect(t)

	p.publish(t, `{"user":"maggie","data":{"seq":1,"t":11}}`)
	for i := range 3 {
		p.publish(t, `{"broadcast":true,"data":{"seq":2,"t":`+string(rune('0'+i))+`}}`)
	}
	// Centrifuge queues what reaches a connect-time subscription before its
	// connect reply is written and flushes those queues channel by channel in
	// map order, so only the set is asserted here, not the order across
	// channels.
	want := map[string]bool{
		`#maggie {"seq":1,"t":11}`:            true,
		broadcastChannel + ` {"seq":2,"t":0}`: true,
		broadcastChannel + ` {"seq":2,"t":1}`: true,
		broadcastChannel + ` {"seq":2,"t":2}`: true,
	}
	for range len(want) {
		l := c.next(t, cwire.Publication)
		got := l.Channel + " " + string(l.Data)
		if !want[got] {
			t.Fatalf("publication %s: not one of those published, or seen twice", got)
		}
		delete(want, got)
	}
	c.send(t, cwire.Send(nil, []byte(`{"t":5,"p":"x"}`)))
	if l := c.next(t, cwire.Message); string(l.Data) != `{"t":5,"p":"x"}` {
		t.Fatalf("echo %s", l.Data)
	}
	// Two ping intervals, each ping answered: still connected after.
	deadline := time.Now().Add(3 * time.Second)
	for c.pings < 2 && time.Now().Before(deadline) {
		p.publish(t, `{"broadcast":true,"data":{"seq":3,"t":3}}`)
		c.next(t, cwire.Publication)
		time.Sleep(150 * time.Millisecond)
	}
	if c.pings < 2 {
		t.Fatalf("%d pings seen, want 2", c.pings)
	}
	p.publish(t, `{"user":"maggie","data":{"seq":4,"t":4}}`)
	if l := c.next(t, cwire.Publication); string(l.Data) != `{"seq":4,"t":4}` {
		t.Fatalf("after pings: %s", l.Data)
	}
}

// TestCentrifugeRecovery: a client subscribes to a channel of its own
// choosing and reads its publications with their offsets; after it was
// away, a new connection subscribing from its last position gets exactly
// what it missed in the subscribe reply, recovered, then the live ones.
// The server-side channels are not for a client to subscribe to.
func TestCentrifugeRecovery(t *testing.T) {
	p := startPeer(t)
	c := p.connect(t)
	c.send(t, cwire.Subscribe(nil, 2, broadcastChannel, 0, ""))
	c.next(t, cwire.Error)
	c.send(t, cwire.Subscribe(nil, 3, "load:1", 0, ""))
	sub := c.next(t, cwire.SubscribeReply)
	if sub.Epoch == "" || sub.Offset != 0 || sub.Recovering {
		t.Fatalf("first subscribe: %+v, want an epoch at offset 0", sub)
	}
	for i := 1; i <= 2; i++ {
		if off := p.publish(t, fmt.Sprintf(`{"channel":"load:1","data":{"n":%d}}`, i)); off != uint64(i) {
			t.Fatalf("publish %d answered offset %d", i, off)
		}
		if l := c.next(t, cwire.Publication); l.Channel != "load:1" || l.Offset != uint64(i) || string(l.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("publication %d: %+v", i, l)
		}
	}
	c.close()
	for i := 3; i <= 5; i++ {
		p.publish(t, fmt.Sprintf(`{"channel":"load:1","data":{"n":%d}}`, i))
	}
	c = p.connect(t)
	c.send(t, cwire.Subscribe(nil, 2, "load:1", 2, sub.Epoch))
	back := c.next(t, cwire.SubscribeReply)
	if !back.Recovering || !back.Recovered || back.Epoch != sub.Epoch || back.Top() != 5 || len(back.Pubs) != 3 {
		t.Fatalf("resubscribe from 2: %+v, want recovered with offsets 3..5", back)
	}
	for i, pub := range back.Pubs {
		if pub.Offset != uint64(3+i) || string(pub.Data) != fmt.Sprintf(`{"n":%d}`, 3+i) {
			t.Fatalf("recovered publication %d: offset %d %s", i, pub.Offset, pub.Data)
		}
	}
	p.publish(t, `{"channel":"load:1","data":{"n":6}}`)
	if l := c.next(t, cwire.Publication); l.Offset != 6 {
		t.Fatalf("live after recovery: %+v", l)
	}
	c.send(t, cwire.Subscribe(nil, 3, "load:2", 9, "not-the-epoch"))
	if l := c.next(t, cwire.SubscribeReply); !l.Recovering || l.Recovered {
		t.Fatalf("resubscribe with an unknown epoch: %+v, want recovered false", l)
	}
}

// testPeer is a centrifuge node behind this peer's handler and HTTP API.
type testPeer struct {
	api, wsURL, token string
}

func startPeer(t *testing.T) *testPeer {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	srv, err := peer.New(peer.Config{HTTPAddr: httpAddr, WSPath: "/ws", TicketTTL: time.Minute, PublishKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	node, err := newNode(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(t.Context()) })
	go func() { _ = srv.ServeHTTPAPIWith(publisher{node}) }()
	ws := httptest.NewServer(handler(srv, node, centrifuge.WebsocketConfig{
		PingPongConfig: centrifuge.PingPongConfig{PingInterval: 400 * time.Millisecond, PongTimeout: 200 * time.Millisecond},
	}))
	t.Cleanup(ws.Close)
	p := &testPeer{api: "http://" + httpAddr, wsURL: "ws" + strings.TrimPrefix(ws.URL, "http") + "/ws?ticket="}
	waitListening(t, httpAddr)
	var login struct{ Token string }
	post(t, p.api+"/auth", "", `{"user":"maggie","pwd":"secret"}`, &login)
	p.token = login.Token
	return p
}

// publish posts body to /publish and returns the offset it answered.
func (p *testPeer) publish(t *testing.T, body string) uint64 {
	t.Helper()
	var r struct{ Offset uint64 }
	post(t, p.api+"/publish", "k", body, &r)
	return r.Offset
}

// client is one connected client: the connect reply read, pings answered.
type client struct {
	c     *websocket.Conn
	lines []cwire.Line
	pings int
}

// connect fetches a ticket, upgrades with it and sends the connect
// command; it returns once the connect reply is in.
func (p *testPeer) connect(t *testing.T) *client {
	t.Helper()
	var tk struct{ Ticket string }
	req, _ := http.NewRequest(http.MethodGet, p.api+"/ws_ticket", nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	do(t, req, &tk)
	wc, _, err := websocket.DefaultDialer.Dial(p.wsURL+tk.Ticket, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{c: wc}
	t.Cleanup(c.close)
	c.send(t, cwire.Connect)
	c.next(t, cwire.ConnectReply)
	return c
}

func (c *client) send(t *testing.T, msg []byte) {
	t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatal(err)
	}
}

func (c *client) close() { _ = c.c.Close() }

// next returns the next line of the given kind, answering pings and
// counting them; any other kind fails the test.
func (c *client) next(t *testing.T, want cwire.Kind) cwire.Line {
	t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		for len(c.lines) > 0 {
			l := c.lines[0]
			c.lines = c.lines[1:]
			if l.Kind == cwire.Ping {
				c.pings++
				c.send(t, cwire.Pong)
			}
			if l.Kind == want {
				return l
			}
			if l.Kind != cwire.Ping {
				t.Fatalf("got %+v, want kind %d", l, want)
			}
		}
		_, msg, err := c.c.ReadMessage()
		if err != nil {
			t.Fatalf("read (want kind %d): %v", want, err)
		}
		cwire.Each(msg, func(l []byte) { c.lines = append(c.lines, cwire.Parse(l)) })
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not listening", addr)
}

func post(t *testing.T, url, bearer, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	do(t, req, out)
}

func do(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

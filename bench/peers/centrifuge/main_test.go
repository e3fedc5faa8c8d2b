package main

import (
	"encoding/json"
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
	defer node.Shutdown(t.Context())
	go func() { _ = srv.ServeHTTPAPIWith(publisher{node}) }()
	ws := httptest.NewServer(handler(srv, node, centrifuge.WebsocketConfig{
		PingPongConfig: centrifuge.PingPongConfig{PingInterval: 400 * time.Millisecond, PongTimeout: 200 * time.Millisecond},
	}))
	defer ws.Close()
	api := "http://" + httpAddr
	waitListening(t, httpAddr)

	var login struct{ Token string }
	post(t, api+"/auth", "", `{"user":"maggie","pwd":"secret"}`, &login)
	ticket := func() string {
		var tk struct{ Ticket string }
		req, _ := http.NewRequest(http.MethodGet, api+"/ws_ticket", nil)
		req.Header.Set("Authorization", "Bearer "+login.Token)
		do(t, req, &tk)
		return tk.Ticket
	}
	wsURL := "ws" + strings.TrimPrefix(ws.URL, "http") + "/ws?ticket="

	if _, resp, err := websocket.DefaultDialer.Dial(wsURL+"AAAAAAAAAAAAAAAAAAAAAA", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown ticket: %v %v, want 401", resp, err)
	}
	c, _, err := websocket.DefaultDialer.Dial(wsURL+ticket(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, cwire.Connect); err != nil {
		t.Fatal(err)
	}
	// next returns the next line of the given kind, answering pings and
	// counting them.
	var lines [][]byte
	pings := 0
	next := func(want cwire.Kind) (string, []byte) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			for len(lines) > 0 {
				l := lines[0]
				lines = lines[1:]
				k, ch, data := cwire.Parse(l)
				if k == cwire.Ping {
					pings++
					if err := c.WriteMessage(websocket.TextMessage, cwire.Pong); err != nil {
						t.Fatal(err)
					}
				}
				if k == want {
					return ch, data
				}
				if k != cwire.Ping {
					t.Fatalf("got %s, want kind %d", l, want)
				}
			}
			_, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read (want kind %d): %v", want, err)
			}
			cwire.Each(msg, func(l []byte) { lines = append(lines, append([]byte(nil), l...)) })
		}
	}
	next(cwire.ConnectReply)

	post(t, api+"/publish", "k", `{"user":"maggie","data":{"seq":1,"t":11}}`, nil)
	for i := range 3 {
		post(t, api+"/publish", "k", `{"broadcast":true,"data":{"seq":2,"t":`+string(rune('0'+i))+`}}`, nil)
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
		ch, data := next(cwire.Publication)
		got := ch + " " + string(data)
		if !want[got] {
			t.Fatalf("publication %s: not one of those published, or seen twice", got)
		}
		delete(want, got)
	}
	if err := c.WriteMessage(websocket.TextMessage, cwire.Send(nil, []byte(`{"t":5,"p":"x"}`))); err != nil {
		t.Fatal(err)
	}
	if _, data := next(cwire.Message); string(data) != `{"t":5,"p":"x"}` {
		t.Fatalf("echo %s", data)
	}
	// Two ping intervals, each ping answered: still connected after.
	deadline := time.Now().Add(3 * time.Second)
	for pings < 2 && time.Now().Before(deadline) {
		post(t, api+"/publish", "k", `{"broadcast":true,"data":{"seq":3,"t":3}}`, nil)
		next(cwire.Publication)
		time.Sleep(150 * time.Millisecond)
	}
	if pings < 2 {
		t.Fatalf("%d pings seen, want 2", pings)
	}
	post(t, api+"/publish", "k", `{"user":"maggie","data":{"seq":4,"t":4}}`, nil)
	if _, data := next(cwire.Publication); string(data) != `{"seq":4,"t":4}` {
		t.Fatalf("after pings: %s", data)
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

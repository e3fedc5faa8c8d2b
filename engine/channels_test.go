package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// chClient is a test client speaking the channel protocol.
type chClient struct {
	t       testing.TB
	conn    net.Conn
	br      *bufio.Reader
	welcome map[string]any
}

// connectCh upgrades with a ticket carrying claims, plus extra query
// parameters ("&since=…"), and reads the welcome.
func connectCh(t testing.TB, s *Server, st *memStore, claims ticket.Claims, query string) *chClient {
	t.Helper()
	conn := dial(t, s)
	if _, err := io.WriteString(conn, upgradeRequest(s.cfg.Path, st.addClaims(claims)+query, "")); err != nil {
		t.Fatal(err)
	}
	c := &chClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	if resp := readResponse(t, c.br); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	c.welcome = c.expect("welcome")
	return c
}

func grants(user string, channels ...string) ticket.Claims {
	return ticket.Claims{Subject: user, Channels: channels}
}

func (c *chClient) send(msg string) {
	c.t.Helper()
	if _, err := c.conn.Write(clientFrame(true, ws.OpText, []byte(msg))); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next data frame as a JSON object (numbers as json.Number).
func (c *chClient) next() map[string]any {
	c.t.Helper()
	for {
		f := readFrame(c.t, c.br)
		if f.op == ws.OpPing || f.op == ws.OpPong {
			continue
		}
		if f.op == ws.OpClose {
			c.t.Fatalf("closed: %q", f.payload)
		}
		dec := json.NewDecoder(bytes.NewReader(f.payload))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			c.t.Fatalf("frame %q: %v", f.payload, err)
		}
		return m
	}
}

// expect reads the next frame and checks its type.
func (c *chClient) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want type %s", m, typ)
	}
	return m
}

// quiet asserts that nothing arrives within d.
func (c *chClient) quiet(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	f, err := tryReadFrame(c.br)
	if err == nil {
		c.t.Fatalf("unexpected frame %v %q", f.op, f.payload)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.t.Fatalf("unexpected end: %v", err)
	}
	// A timed-out bufio read may have consumed nothing; start afresh.
	c.br = bufio.NewReader(c.conn)
	_ = c.conn.SetReadDeadline(time.Now().Add(testTimeout))
}

func num(t testing.TB, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%v: %q is not a number", m, key)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func publish(t testing.TB, s *Server, channel, data string) PublishResult {
	t.Helper()
	r, err := s.PublishChannel(context.Background(), channel, []byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// expectMessage reads a channel message and checks channel, offset, data.
func (c *chClient) expectMessage(channel string, offset int64, data string) {
	c.t.Helper()
	m := c.expect("message")
	if m["channel"] != channel || num(c.t, m, "offset") != offset {
		c.t.Fatalf("got %v, want %s offset %d", m, channel, offset)
	}
	if b, _ := json.Marshal(m["data"]); string(b) != data {
		c.t.Fatalf("data %s, want %s", b, data)
	}
}

// DESIGN 1.4's welcome rows: the personal channel's position, and its
// recovery through the upgrade URL's since.
func TestWelcomePersonalChannel(t *testing.T) {
	s, st := startServer(t, Config{})
	c := connectCh(t, s, st, grants("maggie"), "")
	w := c.welcome
	epoch, _ := w["epoch"].(string)
	if w["user"] != "maggie" || w["channel"] != "#maggie" || num(t, w, "offset") != 0 || epoch == "" || w["recovered"] != nil {
		t.Fatalf("welcome %v", w)
	}
	for i := 1; i <= 3; i++ {
		if r := publish(t, s, "#maggie", fmt.Sprint(i)); r.Recipients != 1 || r.Offset != uint64(i) || r.Epoch != epoch {
			t.Fatalf("publish %d: %+v", i, r)
		}
		c.expectMessage("#maggie", int64(i), fmt.Sprint(i))
	}
	c.conn.Close()
	publish(t, s, "#maggie", "4")
	publish(t, s, "#maggie", "5")

	c2 := connectCh(t, s, st, grants("maggie"), "&since=3:"+epoch)
	if w := c2.welcome; w["recovered"] != true || num(t, w, "missed") != 2 || num(t, w, "offset") != 5 {
		t.Fatalf("welcome %v, want recovered, missed 2, offset 5", w)
	}
	c2.expectMessage("#maggie", 4, "4")
	c2.expectMessage("#maggie", 5, "5")
	publish(t, s, "#maggie", "6")
	c2.expectMessage("#maggie", 6, "6")

	top := int64(6)
	for _, since := range []string{"3:other-epoch", "99:" + epoch} {
		c3 := connectCh(t, s, st, grants("maggie"), "&since="+since)
		if w := c3.welcome; w["recovered"] != false || w["missed"] != nil || num(t, w, "offset") != top {
			t.Fatalf("since %s: welcome %v, want recovered:false at %d", since, w, top)
		}
		top++
		publish(t, s, "#maggie", fmt.Sprint(top))
		c3.expectMessage("#maggie", top, fmt.Sprint(top)) // live ones only, none of the missed
		c2.expectMessage("#maggie", top, fmt.Sprint(top))
		c3.conn.Close()
	}
}

// A malformed since in the URL is refused before the ticket is spent.
func TestWelcomeBadSince(t *testing.T) {
	s, st := startServer(t, Config{})
	for _, since := range []string{"x:e", "-1:e", ":e", "1", "99999999999999999999999:e", "1:" + strings.Repeat("e", 300)} {
		tk := st.add("maggie")
		conn := dial(t, s)
		io.WriteString(conn, upgradeRequest(s.cfg.Path, tk+"&since="+since, ""))
		if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != 400 {
			t.Errorf("since=%s: status %d, want 400", since, resp.StatusCode)
		}
		if !st.has(tk) {
			t.Errorf("since=%s spent the ticket", since)
		}
	}
}

// Every row of DESIGN 1.4's subscribe tables.
func TestSubscribeRows(t *testing.T) {
	s, st := startServer(t, Config{})
	c := connectCh(t, s, st, grants("maggie", "news", "chat:*"), "")

	c.send(`{"type":"subscribe","id":1,"channel":"news"}`)
	sub := c.expect("subscribed")
	epoch := sub["epoch"].(string)
	if num(t, sub, "id") != 1 || sub["channel"] != "news" || num(t, sub, "offset") != 0 || epoch == "" || sub["recovered"] != nil {
		t.Fatalf("subscribed %v", sub)
	}
	for i := 1; i <= 3; i++ {
		if r := publish(t, s, "news", fmt.Sprint(i)); r.Recipients != 1 || r.Offset != uint64(i) {
			t.Fatalf("publish: %+v", r)
		}
		c.expectMessage("news", int64(i), fmt.Sprint(i))
	}
	// Idempotent: a second subscribe answers, and messages still come once.
	c.send(`{"type":"subscribe","id":2,"channel":"news"}`)
	if m := c.expect("subscribed"); num(t, m, "id") != 2 || num(t, m, "offset") != 3 {
		t.Fatalf("resubscribe %v", m)
	}
	publish(t, s, "news", "4")
	c.expectMessage("news", 4, "4")

	// Unsubscribe stops delivery; unsubscribing again still answers.
	c.send(`{"type":"unsubscribe","id":3,"channel":"news"}`)
	if m := c.expect("unsubscribed"); num(t, m, "id") != 3 || m["channel"] != "news" {
		t.Fatalf("unsubscribed %v", m)
	}
	publish(t, s, "news", "5")
	publish(t, s, "news", "6")
	c.send(`{"type":"unsubscribe","id":4,"channel":"news"}`)
	c.expect("unsubscribed")
	c.send(`{"type":"ping","id":5}`)
	if m := c.expect("pong"); num(t, m, "id") != 5 {
		t.Fatalf("pong %v", m)
	}

	// since with the right epoch: exactly the missed ones, then live.
	c.send(`{"type":"subscribe","id":6,"channel":"news","since":{"offset":4,"epoch":"` + epoch + `"}}`)
	if m := c.expect("subscribed"); m["recovered"] != true || num(t, m, "missed") != 2 || num(t, m, "offset") != 6 {
		t.Fatalf("recovering subscribe %v", m)
	}
	c.expectMessage("news", 5, "5")
	c.expectMessage("news", 6, "6")
	publish(t, s, "news", "7")
	c.expectMessage("news", 7, "7")

	// since that cannot be served: another epoch, past the top.
	for i, since := range []string{`{"offset":1,"epoch":"nope"}`, `{"offset":70,"epoch":"` + epoch + `"}`} {
		ch := fmt.Sprintf("chat:%d", i)
		publish(t, s, ch, "1")
		c.send(`{"type":"subscribe","id":7,"channel":"` + ch + `","since":` + since + `}`)
		if m := c.expect("subscribed"); m["recovered"] != false || m["missed"] != nil || num(t, m, "offset") != 1 {
			t.Fatalf("since %s: %v", since, m)
		}
		publish(t, s, ch, "2")
		c.expectMessage(ch, 2, "2")
	}
	// A broadcast has no channel and no offset.
	s.BroadcastCount([]byte(`"all"`))
	if m := c.expect("message"); m["channel"] != nil || m["offset"] != nil || m["data"] != "all" {
		t.Fatalf("broadcast %v", m)
	}
}

// Every refused command gets its error code; the connection stays open.
func TestCommandErrors(t *testing.T) {
	s, st := startServer(t, Config{MaxChannelsPerConn: 2, MaxMessageBytes: 2 << 20})
	c := connectCh(t, s, st, grants("maggie", "news", "a", "b", "c", "#bob", "*x"), "")
	long := strings.Repeat("e", 1<<20)
	cases := []struct {
		msg, code string
		id        any // json.Number text, or nil for absent
	}{
		{`not json`, codeBadRequest, nil},
		{`[1,2]`, codeBadRequest, nil},
		{`"subscribe"`, codeBadRequest, nil},
		{`{}`, codeBadRequest, nil},
		{`{"type":"dance","id":9}`, codeBadRequest, "9"},
		{`{"type":"subscribe","id":1}`, codeBadRequest, "1"},
		{`{"type":"subscribe","id":1,"channel":5}`, codeBadRequest, "1"},
		{`{"type":"subscribe","id":1,"channel":""}`, codeBadRequest, "1"},
		{`{"type":"subscribe","id":1,"channel":"a b"}`, codeBadRequest, "1"},
		{`{"type":"subscribe","id":1,"channel":"` + strings.Repeat("a", 201) + `"}`, codeBadRequest, "1"},
		{`{"type":"subscribe","id":2,"channel":"secret"}`, codeForbidden, "2"},
		{`{"type":"subscribe","id":3,"channel":"#bob"}`, codeForbidden, "3"},
		{`{"type":"subscribe","id":99999999999999999999999,"channel":"news"}`, codeBadRequest, nil},
		{`{"type":"subscribe","id":-1,"channel":"news"}`, codeBadRequest, nil},
		{`{"type":"subscribe","id":1.5,"channel":"news"}`, codeBadRequest, nil},
		{`{"type":"subscribe","id":4,"channel":"news","since":{"offset":-1,"epoch":"e"}}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":4,"channel":"news","since":{"offset":"7","epoch":"e"}}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":4,"channel":"news","since":{"offset":1e3,"epoch":"e"}}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":4,"channel":"news","since":{"offset":99999999999999999999999,"epoch":"e"}}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":4,"channel":"news","since":{"offset":1}}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":4,"channel":"news","since":7}`, codeBadRequest, "4"},
		{`{"type":"subscribe","id":5,"channel":"news","since":{"offset":1,"epoch":"` + long + `"}}`, codeBadRequest, "5"},
		{`{"type":"unsubscribe","id":6,"channel":"#maggie"}`, codeBadRequest, "6"},
		{`{"type":"refresh","id":7}`, codeBadRequest, "7"},
		{`{"type":"refresh","id":8,"ticket":"AAAAAAAAAAAAAAAAAAAAAA"}`, codeForbidden, "8"},
		{`{"type":"ping","id":10} trailing`, codeBadRequest, "10"},
	}
	for _, tc := range cases {
		c.send(tc.msg)
		m := c.expect("error")
		if m["code"] != tc.code || m["reason"] == "" {
			t.Errorf("%.60s: %v, want code %s", tc.msg, m, tc.code)
		}
		got, present := m["id"]
		switch {
		case tc.id == nil && present:
			t.Errorf("%.60s: id %v echoed, want none", tc.msg, got)
		case tc.id != nil && (!present || got.(json.Number).String() != tc.id):
			t.Errorf("%.60s: id %v, want %v", tc.msg, got, tc.id)
		}
	}
	// A binary frame is not a command.
	c.conn.Write(clientFrame(true, ws.OpBinary, []byte(`{"type":"ping"}`)))
	if m := c.expect("error"); m["code"] != codeBadRequest {
		t.Fatalf("binary: %v", m)
	}
	// too_many_channels past MaxChannelsPerConn; the personal one is not counted.
	c.send(`{"type":"subscribe","id":11,"channel":"a"}`)
	c.expect("subscribed")
	c.send(`{"type":"subscribe","id":12,"channel":"b"}`)
	c.expect("subscribed")
	c.send(`{"type":"subscribe","id":13,"channel":"c"}`)
	if m := c.expect("error"); m["code"] != codeTooManyChannels || num(t, m, "id") != 13 {
		t.Fatalf("third channel: %v", m)
	}
	// Still open and answering.
	c.send(`{"type":"ping"}`)
	if m := c.expect("pong"); m["id"] != nil {
		t.Fatalf("pong without id: %v", m)
	}
	st0 := s.Stats()
	if st0.Commands[cmdSubscribe][resultError] == 0 || st0.Commands[cmdPing][resultOK] != 1 || st0.Subscriptions != 3 {
		t.Fatalf("stats %+v", st0)
	}
}

// More than 100 commands within a second closes with 1008; a burst of 100 is fine.
func TestCommandFlood(t *testing.T) {
	s, st := startServer(t, Config{})
	c := connectCh(t, s, st, grants("maggie"), "")
	var burst []byte
	for range 100 {
		burst = append(burst, clientFrame(true, ws.OpText, []byte(`{"type":"ping"}`))...)
	}
	c.conn.Write(burst)
	for range 100 {
		c.expect("pong")
	}
	// The bucket refills at 100/s: 50 more at once cannot all pass.
	c.conn.Write(bytes.Repeat(clientFrame(true, ws.OpText, []byte(`{"type":"ping"}`)), 50))
	expectClose(t, c.br, ws.StatusPolicyViolation)
	if s.Stats().CommandFloods != 1 {
		t.Fatalf("floods %d", s.Stats().CommandFloods)
	}
}

// Under echo no command is read: a subscribe comes back as it went.
func TestEchoReadsNoCommand(t *testing.T) {
	s, st := startServer(t, Config{Echo: true})
	c := connectCh(t, s, st, grants("maggie", "*"), "")
	c.send(`{"type":"subscribe","id":1,"channel":"news"}`)
	if m := c.next(); m["type"] != "subscribe" {
		t.Fatalf("echo %v", m)
	}
	if s.Stats().Subscriptions != 1 {
		t.Fatalf("subscriptions %d, want only the personal one", s.Stats().Subscriptions)
	}
}

// refresh: a fresh ticket of the same user moves the expiry; anything else
// is forbidden.
func TestRefresh(t *testing.T) {
	s, st := startServer(t, Config{})
	c := connectCh(t, s, st, ticket.Claims{Subject: "maggie", SessionExpires: time.Now().Add(time.Minute)}, "")
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	c.send(`{"type":"refresh","id":4,"ticket":"` + st.addClaims(ticket.Claims{Subject: "maggie", SessionExpires: later, Channels: []string{"news"}}) + `"}`)
	if m := c.expect("refreshed"); num(t, m, "id") != 4 || num(t, m, "expires") != later.Unix() {
		t.Fatalf("refreshed %v", m)
	}
	// The new ticket's grants apply.
	c.send(`{"type":"subscribe","id":5,"channel":"news"}`)
	c.expect("subscribed")
	c.send(`{"type":"refresh","id":6,"ticket":"` + st.add("bob") + `"}`)
	if m := c.expect("error"); m["code"] != codeForbidden || num(t, m, "id") != 6 {
		t.Fatalf("other user's ticket: %v", m)
	}
	// A ticket bound to a page's Origin does not refresh a connection
	// opened without that Origin.
	c.send(`{"type":"refresh","id":7,"ticket":"` + st.addClaims(ticket.Claims{Subject: "maggie", Origin: "https://app.example"}) + `"}`)
	if m := c.expect("error"); m["code"] != codeForbidden || num(t, m, "id") != 7 {
		t.Fatalf("ticket of another Origin: %v", m)
	}
	if r := s.Stats().Refreshes; r[0] != 1 || r[1] != 2 {
		t.Fatalf("refreshes %v", r)
	}
}

// disconnectHook calls before ahead of its broker's Disconnect: what happens
// on the node between the local pass and the broker's delivery back.
type disconnectHook struct {
	broker.Broker
	before func()
}

func (h *disconnectHook) Disconnect(ctx context.Context, d broker.Disconnect) error {
	h.before()
	return h.Broker.Disconnect(ctx, d)
}

// TestDisconnectSparesAReconnect: a user's client closed by /disconnect
// that comes back before the broker's delivery of the same disconnect
// returns to this node stays connected: the delivery names this node as
// its origin and is ignored here. Another node's delivery still closes.
func TestDisconnectSparesAReconnect(t *testing.T) {
	mem, err := broker.NewMemory(broker.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hook := &disconnectHook{Broker: mem}
	s, st := startServer(t, Config{Broker: hook})
	old := connectCh(t, s, st, grants("maggie"), "")
	var back *chClient
	hook.before = func() { back = connectCh(t, s, st, grants("maggie"), "") }
	if n, err := s.Disconnect(context.Background(), broker.Disconnect{User: "maggie"}); err != nil || n != 1 {
		t.Fatalf("disconnect maggie: %d %v", n, err)
	}
	expectClose(t, old.br, closeDisconnected)
	if n := s.PublishCount("maggie", []byte(`"still here"`)); n != 1 {
		t.Fatalf("publish to maggie reached %d connections, want the one that came back", n)
	}
	back.expectMessage(PersonalChannel("maggie"), 1, `"still here"`)
	// The same disconnect delivered from another node closes it.
	s.hub.HandleDisconnect(broker.Disconnect{User: "maggie", Origin: "another-node"})
	expectClose(t, back.br, closeDisconnected)
}

// TestDisconnectClosesWhatWasOpen: a loop's part of a /disconnect closes
// the user's connections it had opened when the request was taken, not
// one that came in before its task ran.
func TestDisconnectClosesWhatWasOpen(t *testing.T) {
	s, st := startServer(t, Config{Loops: 1})
	old := connectCh(t, s, st, grants("maggie"), "")
	l := s.loopList()[0]
	upTo := l.lastSeq.Load() // as Disconnect reads it when called
	late := connectCh(t, s, st, grants("maggie"), "")
	closed := make(chan int, 1)
	if err := l.el.Execute(context.Background(), runnable(func(context.Context) error {
		closed <- l.disconnect(broker.Disconnect{User: "maggie"}, upTo)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if n := <-closed; n != 1 {
		t.Fatalf("closed %d, want the one open when asked", n)
	}
	expectClose(t, old.br, closeDisconnected)
	if n := s.PublishCount("maggie", []byte(`"late"`)); n != 1 {
		t.Fatalf("publish to maggie reached %d connections, want the late one", n)
	}
	late.expectMessage(PersonalChannel("maggie"), 1, `"late"`)
}

// Disconnect closes with 4001 by user or by connection id.
func TestDisconnect(t *testing.T) {
	s, st := startServer(t, Config{})
	a1 := connectCh(t, s, st, grants("maggie"), "")
	a2 := connectCh(t, s, st, grants("maggie"), "")
	b := connectCh(t, s, st, grants("bob"), "")
	if n, err := s.Disconnect(context.Background(), broker.Disconnect{User: "maggie"}); err != nil || n != 2 {
		t.Fatalf("disconnect maggie: %d %v", n, err)
	}
	expectClose(t, a1.br, closeDisconnected)
	expectClose(t, a2.br, closeDisconnected)
	id := b.welcome["conn"].(string)
	if n, _ := s.Disconnect(context.Background(), broker.Disconnect{Conn: "nope.0.1"}); n != 0 {
		t.Fatalf("unknown conn: %d", n)
	}
	if n, _ := s.Disconnect(context.Background(), broker.Disconnect{Conn: id}); n != 1 {
		t.Fatalf("disconnect %s: %d", id, n)
	}
	expectClose(t, b.br, closeDisconnected)
}

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws/wsutil"
)

// send writes one client text message.
func (c *wsClient) send(t *testing.T, msg string) {
	t.Helper()
	if err := wsutil.WriteClientText(c.conn, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// expect reads the next message and checks its type.
func (c *wsClient) expect(t *testing.T, typ string) map[string]any {
	t.Helper()
	m := c.read(t)
	if m["type"] != typ {
		t.Fatalf("got %v, want type %s", m, typ)
	}
	return m
}

// expectMessage reads a channel message and checks channel and offset.
func (c *wsClient) expectMessage(t *testing.T, channel string, offset float64, data any) {
	t.Helper()
	m := c.expect(t, "message")
	if m["channel"] != channel || m["offset"] != offset || fmt.Sprint(m["data"]) != fmt.Sprint(data) {
		t.Fatalf("got %v, want %s offset %v data %v", m, channel, offset, data)
	}
}

// publishJSON posts body to path with the publish key and decodes the answer.
func (s *testServer) publishJSON(t *testing.T, path, body string) map[string]any {
	t.Helper()
	var out map[string]any
	if code := s.do(t, "POST", path, s.PublishKey, body, &out); code != http.StatusOK {
		t.Fatalf("%s %s: status %d", path, body, code)
	}
	return out
}

// connectURL logs in as maggie and connects with extra query parameters.
func connectMaggie(t *testing.T, s *testServer, query string) (*wsClient, map[string]any) {
	t.Helper()
	_, url := s.Ticket(t, s.Login(t, "maggie", "secret"))
	c := dial(t, url+query)
	return c, c.expect(t, "welcome")
}

// DESIGN 1.4 and 1.5 over the real binary: the welcome's personal channel,
// subscribe, publish to a channel and a user, idempotency keys, batches,
// recovery of both kinds after a reconnect, unsubscribe, ping, /disconnect
// and the metrics.
func TestEndToEndChannels(t *testing.T) {
	s := startBinary(t)
	c, w := connectMaggie(t, s, "")
	personalEpoch, _ := w["epoch"].(string)
	if w["channel"] != "#maggie" || w["offset"] != 0.0 || personalEpoch == "" {
		t.Fatalf("welcome %v", w)
	}
	c.send(t, `{"type":"subscribe","id":1,"channel":"news"}`)
	sub := c.expect(t, "subscribed")
	epoch, _ := sub["epoch"].(string)
	if sub["id"] != 1.0 || sub["channel"] != "news" || sub["offset"] != 0.0 || epoch == "" {
		t.Fatalf("subscribed %v", sub)
	}
	res := s.publishJSON(t, "/publish", `{"channel":"news","data":{"n":1}}`)
	if res["recipients"] != 1.0 || res["offset"] != 1.0 || res["epoch"] != epoch {
		t.Fatalf("publish answered %v", res)
	}
	c.expectMessage(t, "news", 1, map[string]any{"n": 1.0})

	// The same idempotency key publishes once and answers the first result.
	for range 2 {
		if res := s.publishJSON(t, "/publish", `{"channel":"news","idempotency_key":"k-1","data":"once"}`); res["offset"] != 2.0 {
			t.Fatalf("idempotent publish answered %v", res)
		}
	}
	if res := s.publishJSON(t, "/publish", `{"user":"maggie","data":"to me"}`); res["offset"] != 1.0 || res["epoch"] != personalEpoch || res["recipients"] != 1.0 {
		t.Fatalf("user publish answered %v", res)
	}
	c.expectMessage(t, "news", 2, "once")
	c.expectMessage(t, "#maggie", 1, "to me")

	// A batch: one result per item, a bad item fails alone.
	out := s.publishJSON(t, "/publish", `{"messages":[{"channel":"news","data":"b1"},{"channel":"bad name","data":0},{"user":"maggie","data":"b2"}]}`)
	results, _ := out["results"].([]any)
	if len(results) != 3 {
		t.Fatalf("batch answered %v", out)
	}
	if r := results[0].(map[string]any); r["offset"] != 3.0 {
		t.Fatalf("item 0: %v", r)
	}
	if r := results[1].(map[string]any); r["error"] == nil || r["status"] != 400.0 {
		t.Fatalf("item 1: %v", r)
	}
	c.expectMessage(t, "news", 3, "b1")
	c.expectMessage(t, "#maggie", 2, "b2")

	// Dropped: what is published meanwhile is recovered on reconnect, the
	// personal channel through the URL, news through subscribe's since.
	c.conn.Close()
	s.publishJSON(t, "/publish", `{"channel":"news","data":"m4"}`)
	s.publishJSON(t, "/publish", `{"channel":"news","data":"m5"}`)
	s.publishJSON(t, "/publish", `{"user":"maggie","data":"p3"}`)
	c, w = connectMaggie(t, s, "&since=2:"+personalEpoch)
	if w["recovered"] != true || w["missed"] != 1.0 || w["offset"] != 3.0 {
		t.Fatalf("welcome after reconnect %v", w)
	}
	c.expectMessage(t, "#maggie", 3, "p3")
	c.send(t, `{"type":"subscribe","id":2,"channel":"news","since":{"offset":3,"epoch":"`+epoch+`"}}`)
	if m := c.expect(t, "subscribed"); m["recovered"] != true || m["missed"] != 2.0 || m["offset"] != 5.0 {
		t.Fatalf("recovering subscribe %v", m)
	}
	c.expectMessage(t, "news", 4, "m4")
	c.expectMessage(t, "news", 5, "m5")
	c.send(t, `{"type":"subscribe","id":3,"channel":"other","since":{"offset":3,"epoch":"not-this-one"}}`)
	if m := c.expect(t, "subscribed"); m["recovered"] != false || m["missed"] != nil {
		t.Fatalf("unrecoverable subscribe %v", m)
	}
	c.send(t, `{"type":"unsubscribe","id":4,"channel":"other"}`)
	if m := c.expect(t, "unsubscribed"); m["id"] != 4.0 || m["channel"] != "other" {
		t.Fatalf("unsubscribed %v", m)
	}
	c.send(t, `{"type":"ping","id":5}`)
	if m := c.expect(t, "pong"); m["id"] != 5.0 {
		t.Fatalf("pong %v", m)
	}
	c.send(t, `{"type":"subscribe","id":6,"channel":"#bob"}`)
	if m := c.expect(t, "error"); m["code"] != "forbidden" || m["id"] != 6.0 || m["reason"] == "" {
		t.Fatalf("another's personal channel: %v", m)
	}
	c.send(t, `nonsense`)
	if m := c.expect(t, "error"); m["code"] != "bad_request" || m["id"] != nil {
		t.Fatalf("not JSON: %v", m)
	}

	metrics := s.metrics(t)
	for _, want := range []string{
		"turnstile_channels_live 2", // #maggie and news
		"turnstile_subscriptions 2",
		`turnstile_recoveries_total{result="recovered"} 2`,
		`turnstile_recoveries_total{result="failed"} 1`,
		`turnstile_commands_total{result="ok",type="subscribe"} 3`,
		`turnstile_commands_total{result="error",type="subscribe"} 1`,
		`turnstile_commands_total{result="ok",type="ping"} 1`,
		"turnstile_history_bytes ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if out := s.publishJSON(t, "/disconnect", `{"user":"maggie"}`); out["disconnected"] != 1.0 {
		t.Fatalf("disconnect answered %v", out)
	}
	if code := c.readClose(t); code != 4001 {
		t.Fatalf("close code %d, want 4001", code)
	}
	if code := s.do(t, "POST", "/disconnect", "", `{"user":"maggie"}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("disconnect without key: %d", code)
	}
}

// -auth-channels replaces -dev's "*": only the grants open channels, and
// the personal channel is always one's own.
func TestEndToEndAuthChannels(t *testing.T) {
	s := startBinary(t, "-auth-channels", "news, chat:*", "-max-channels-per-conn", "2")
	c, _ := connectMaggie(t, s, "")
	for i, tc := range []struct{ channel, want string }{
		{"news", "subscribed"}, {"secret", "error"}, {"chat:42", "subscribed"}, {"chat:43", "error"}, {"#maggie", "subscribed"},
	} {
		c.send(t, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"%s"}`, i, tc.channel))
		m := c.expect(t, tc.want)
		if m["id"] != float64(i) {
			t.Fatalf("%s: %v", tc.channel, m)
		}
		switch tc.channel {
		case "secret":
			if m["code"] != "forbidden" {
				t.Fatalf("secret: %v", m)
			}
		case "chat:43": // the third channel; the personal one does not count
			if m["code"] != "too_many_channels" {
				t.Fatalf("chat:43: %v", m)
			}
		}
	}
}

// -history-size bounds what can be recovered: past it, recovered:false.
func TestEndToEndHistoryLimit(t *testing.T) {
	s := startBinary(t, "-history-size", "2")
	c, _ := connectMaggie(t, s, "")
	c.send(t, `{"type":"subscribe","id":1,"channel":"news"}`)
	epoch := c.expect(t, "subscribed")["epoch"].(string)
	c.conn.Close()
	for i := range 3 {
		s.publishJSON(t, "/publish", fmt.Sprintf(`{"channel":"news","data":%d}`, i))
	}
	c, _ = connectMaggie(t, s, "")
	c.send(t, `{"type":"subscribe","id":2,"channel":"news","since":{"offset":0,"epoch":"`+epoch+`"}}`)
	if m := c.expect(t, "subscribed"); m["recovered"] != false || m["offset"] != 3.0 {
		t.Fatalf("three missed, two kept: %v", m)
	}
	c.send(t, `{"type":"subscribe","id":3,"channel":"other","since":{"offset":1,"epoch":"`+epoch+`"}}`)
	if m := c.expect(t, "subscribed"); m["recovered"] != false {
		t.Fatalf("another channel's epoch: %v", m)
	}
	s.publishJSON(t, "/publish", `{"channel":"news","data":"live"}`)
	c.expectMessage(t, "news", 4, "live")

	// The personal channel through the URL: another epoch is recovered:false.
	s.publishJSON(t, "/publish", `{"user":"maggie","data":"p1"}`)
	c2, w := connectMaggie(t, s, "&since=0:not-an-epoch")
	if w["recovered"] != false || w["missed"] != nil || w["offset"] != 1.0 {
		t.Fatalf("welcome %v, want recovered:false at 1", w)
	}
	// More than 100 commands at once: closed with 1008.
	var flood []byte
	for range 150 {
		flood = append(flood, wsFrame(`{"type":"ping"}`)...)
	}
	if _, err := c2.conn.Write(flood); err != nil {
		t.Fatal(err)
	}
	if code := c2.readClose(t); code != 1008 {
		t.Fatalf("command flood: close %d, want 1008", code)
	}
}

// wsFrame is one masked client text frame.
func wsFrame(msg string) []byte {
	var b bytes.Buffer
	_ = wsutil.WriteClientText(&b, []byte(msg))
	return b.Bytes()
}

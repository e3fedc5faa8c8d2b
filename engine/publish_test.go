package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/turnstile-push/turnstile/engine/broker"
)

type recordingHub struct {
	mu        sync.Mutex
	channels  []string
	keys      []string
	data      string
	broadcast bool
	calls     int
	fail      error
	dis       []broker.Disconnect
}

func (h *recordingHub) PublishChannel(_ context.Context, channel string, data []byte, key string) (PublishResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return PublishResult{}, h.fail
	}
	h.calls++
	h.channels = append(h.channels, channel)
	h.keys = append(h.keys, key)
	h.data = string(data)
	return PublishResult{Recipients: 2, Offset: uint64(h.calls), Epoch: "e1"}, nil
}

func (h *recordingHub) BroadcastAll(_ context.Context, data []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return 0, h.fail
	}
	h.calls++
	h.broadcast, h.data = true, string(data)
	return 7, nil
}

func (h *recordingHub) Disconnect(_ context.Context, d broker.Disconnect) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return 0, h.fail
	}
	h.dis = append(h.dis, d)
	return 3, nil
}

func TestPublishHandler(t *testing.T) {
	const key = "publish-key-for-tests-0123456789"
	cases := []struct {
		name        string
		method      string
		auth        string
		body        string
		status      int
		recipients  int
		wantUser    string
		wantChannel string
		wantKey     string
		wantData    string
		broadcast   bool
		errorHas    string
	}{
		{name: "user", method: "POST", auth: "Bearer " + key, body: `{"user":"maggie","data":{"n": 1}}`, status: 200, recipients: 2, wantUser: "maggie", wantData: `{"n":1}`},
		{name: "broadcast", method: "POST", auth: "Bearer " + key, body: `{"broadcast":true,"data":"hi"}`, status: 200, recipients: 7, wantData: `"hi"`, broadcast: true},
		{name: "null data is data", method: "POST", auth: "Bearer " + key, body: `{"user":"u","data":null}`, status: 200, recipients: 2, wantUser: "u", wantData: `null`},
		{name: "scheme is case-insensitive", method: "POST", auth: "bearer " + key, body: `{"user":"u","data":1}`, status: 200, recipients: 2, wantUser: "u", wantData: `1`},
		{name: "GET", method: "GET", auth: "Bearer " + key, status: 405, errorHas: "POST"},
		{name: "no key", method: "POST", body: `{"user":"u","data":1}`, status: 401, errorHas: "publish key"},
		{name: "wrong key", method: "POST", auth: "Bearer nope", body: `{"user":"u","data":1}`, status: 401, errorHas: "publish key"},
		{name: "key prefix", method: "POST", auth: "Bearer " + key[:10], body: `{"user":"u","data":1}`, status: 401},
		{name: "basic auth", method: "POST", auth: "Basic " + key, body: `{"user":"u","data":1}`, status: 401},
		{name: "malformed", method: "POST", auth: "Bearer " + key, body: `{"user":`, status: 400, errorHas: "malformed"},
		{name: "unknown field", method: "POST", auth: "Bearer " + key, body: `{"usr":"u","data":1}`, status: 400, errorHas: "usr"},
		{name: "two values", method: "POST", auth: "Bearer " + key, body: `{"user":"u","data":1}{}`, status: 400, errorHas: "more than one"},
		{name: "no target", method: "POST", auth: "Bearer " + key, body: `{"data":1}`, status: 400, errorHas: "missing target"},
		{name: "both targets", method: "POST", auth: "Bearer " + key, body: `{"user":"u","broadcast":true,"data":1}`, status: 400, errorHas: "one of"},
		{name: "user and channel", method: "POST", auth: "Bearer " + key, body: `{"user":"u","channel":"news","data":1}`, status: 400, errorHas: "one of"},
		{name: "channel", method: "POST", auth: "Bearer " + key, body: `{"channel":"news","data":1}`, status: 200, recipients: 2, wantChannel: "news", wantData: `1`},
		{name: "personal channel", method: "POST", auth: "Bearer " + key, body: `{"channel":"#u","data":1}`, status: 200, recipients: 2, wantChannel: "#u", wantData: `1`},
		{name: "bad channel name", method: "POST", auth: "Bearer " + key, body: `{"channel":"a b","data":1}`, status: 400, errorHas: "channel name"},
		{name: "empty channel", method: "POST", auth: "Bearer " + key, body: `{"channel":"","data":1}`, status: 400, errorHas: "channel name"},
		{name: "long channel", method: "POST", auth: "Bearer " + key, body: `{"channel":"` + strings.Repeat("a", 201) + `","data":1}`, status: 400, errorHas: "channel name"},
		{name: "idempotency key", method: "POST", auth: "Bearer " + key, body: `{"channel":"news","idempotency_key":"k1","data":1}`, status: 200, recipients: 2, wantChannel: "news", wantKey: "k1", wantData: `1`},
		{name: "key on broadcast", method: "POST", auth: "Bearer " + key, body: `{"broadcast":true,"idempotency_key":"k1","data":1}`, status: 400, errorHas: "idempotency_key"},
		{name: "key too long", method: "POST", auth: "Bearer " + key, body: `{"user":"u","idempotency_key":"` + strings.Repeat("k", 65) + `","data":1}`, status: 400, errorHas: "64 bytes"},
		{name: "empty key", method: "POST", auth: "Bearer " + key, body: `{"user":"u","idempotency_key":"","data":1}`, status: 400, errorHas: "64 bytes"},
		{name: "batch with a target", method: "POST", auth: "Bearer " + key, body: `{"user":"u","messages":[{"user":"u","data":1}]}`, status: 400, errorHas: "batch"},
		{name: "empty batch", method: "POST", auth: "Bearer " + key, body: `{"messages":[]}`, status: 400, errorHas: "empty"},
		{name: "no data", method: "POST", auth: "Bearer " + key, body: `{"user":"u"}`, status: 400, errorHas: `"data"`},
		{name: "too large", method: "POST", auth: "Bearer " + key, body: `{"user":"u","data":"` + strings.Repeat("x", 2048) + `"}`, status: 413, errorHas: "larger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hub := &recordingHub{}
			h, err := NewPublishHandler(hub, key, 1024)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, "/publish", strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.status != 200 {
				var e struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tc.errorHas) {
					t.Errorf("error body %s, want it to mention %q", rec.Body, tc.errorHas)
				}
				if hub.calls != 0 {
					t.Errorf("a refused request reached the hub")
				}
				if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if tc.status == 405 && rec.Header().Get("Allow") != "POST" {
					t.Errorf("405 without Allow: POST")
				}
				return
			}
			var ok struct{ Recipients int }
			if err := json.Unmarshal(rec.Body.Bytes(), &ok); err != nil || ok.Recipients != tc.recipients {
				t.Fatalf("body %s, want recipients %d", rec.Body, tc.recipients)
			}
			want := tc.wantChannel
			if tc.wantUser != "" {
				want = "#" + tc.wantUser
			}
			var got, gotKey string
			if len(hub.channels) == 1 {
				got, gotKey = hub.channels[0], hub.keys[0]
			}
			if got != want || gotKey != tc.wantKey || hub.data != tc.wantData || hub.broadcast != tc.broadcast || hub.calls != 1 {
				t.Errorf("hub got channels=%q keys=%q data=%q broadcast=%v calls=%d", hub.channels, hub.keys, hub.data, hub.broadcast, hub.calls)
			}
			if !tc.broadcast {
				var pos struct {
					Offset uint64
					Epoch  string
				}
				if json.Unmarshal(rec.Body.Bytes(), &pos); pos.Offset != 1 || pos.Epoch != "e1" {
					t.Errorf("body %s: want offset 1, epoch e1", rec.Body)
				}
			}
		})
	}
}

func TestNewPublishHandlerRefusesEmptyKey(t *testing.T) {
	if _, err := NewPublishHandler(&recordingHub{}, "", 0); err == nil {
		t.Fatal("empty key accepted")
	}
}

func publishRequestTo(t *testing.T, h http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer publish-key-for-tests-0123456789")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// A batch answers one result per item, in order; a bad item fails alone.
func TestPublishBatch(t *testing.T) {
	hub := &recordingHub{}
	h, err := NewPublishHandler(hub, "publish-key-for-tests-0123456789", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := publishRequestTo(t, h, "/publish", `{"messages":[{"user":"a","data":1},{"channel":"bad name","data":2},{"broadcast":true,"data":3},{"messages":[]},{"channel":"news","idempotency_key":"k","data":4}]}`)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out struct {
		Results []struct {
			Recipients *int
			Offset     *uint64
			Epoch      string
			Error      string
			Status     int
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Results) != 5 {
		t.Fatalf("body %s", rec.Body)
	}
	r := out.Results
	if r[0].Error != "" || *r[0].Offset != 1 || r[0].Epoch != "e1" || *r[0].Recipients != 2 {
		t.Errorf("item 0: %+v", r[0])
	}
	if !strings.Contains(r[1].Error, "channel name") || r[1].Status != 400 || r[1].Offset != nil {
		t.Errorf("item 1: %+v", r[1])
	}
	if r[2].Error != "" || *r[2].Recipients != 7 || r[2].Offset != nil {
		t.Errorf("item 2: %+v", r[2])
	}
	if r[3].Error == "" || r[3].Status != 400 {
		t.Errorf("item 3: %+v", r[3])
	}
	if r[4].Error != "" || *r[4].Offset != 3 {
		t.Errorf("item 4: %+v", r[4])
	}
	if got := strings.Join(hub.channels, ","); got != "#a,news" || hub.keys[1] != "k" {
		t.Errorf("published to %s keys %q", got, hub.keys)
	}
}

func TestPublishBatchLimits(t *testing.T) {
	h, _ := NewPublishHandler(&recordingHub{}, "publish-key-for-tests-0123456789", 0)
	items := strings.Repeat(`{"user":"a","data":1},`, MaxBatch)
	if rec := publishRequestTo(t, h, "/publish", `{"messages":[`+items[:len(items)-1]+`]}`); rec.Code != 200 {
		t.Errorf("batch of %d: status %d", MaxBatch, rec.Code)
	}
	if rec := publishRequestTo(t, h, "/publish", `{"messages":[`+items+`{"user":"a","data":1}]}`); rec.Code != 400 || !strings.Contains(rec.Body.String(), "at most 1000") {
		t.Errorf("batch of %d: status %d %s", MaxBatch+1, rec.Code, rec.Body)
	}
	big := `{"messages":[{"user":"a","data":"` + strings.Repeat("x", DefaultMaxPublishBytes) + `"}]}`
	if rec := publishRequestTo(t, h, "/publish", big); rec.Code != 413 {
		t.Errorf("1 MiB body: status %d", rec.Code)
	}
}

// An unreachable broker is 503 with Retry-After, for publish and disconnect.
func TestPublishBrokerUnavailable(t *testing.T) {
	hub := &recordingHub{fail: broker.ErrUnavailable}
	h, _ := NewPublishHandler(hub, "publish-key-for-tests-0123456789", 0)
	for _, tc := range []struct{ path, body string }{
		{"/publish", `{"channel":"news","data":1}`},
		{"/publish", `{"broadcast":true,"data":1}`},
		{"/disconnect", `{"user":"a"}`},
	} {
		handler := http.Handler(h)
		if tc.path == "/disconnect" {
			handler = h.Disconnect()
		}
		rec := publishRequestTo(t, handler, tc.path, tc.body)
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: status %d, Retry-After %q", tc.path, tc.body, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
}

func TestDisconnectHandler(t *testing.T) {
	hub := &recordingHub{}
	h, _ := NewPublishHandler(hub, "publish-key-for-tests-0123456789", 0)
	d := h.Disconnect()
	cases := []struct {
		body   string
		status int
		want   broker.Disconnect
	}{
		{`{"user":"maggie"}`, 200, broker.Disconnect{User: "maggie"}},
		{`{"conn":"x.0.1"}`, 200, broker.Disconnect{Conn: "x.0.1"}},
		{`{"user":"a","conn":"b"}`, 400, broker.Disconnect{}},
		{`{}`, 400, broker.Disconnect{}},
		{`{"user":""}`, 400, broker.Disconnect{}},
		{`{"usr":"a"}`, 400, broker.Disconnect{}},
		{`[`, 400, broker.Disconnect{}},
	}
	for _, tc := range cases {
		hub.dis = nil
		rec := publishRequestTo(t, d, "/disconnect", tc.body)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d %s", tc.body, rec.Code, rec.Body)
			continue
		}
		if tc.status == 200 {
			if len(hub.dis) != 1 || hub.dis[0] != tc.want || strings.TrimSpace(rec.Body.String()) != `{"disconnected":3}` {
				t.Errorf("%s: hub got %+v, body %s", tc.body, hub.dis, rec.Body)
			}
		} else if len(hub.dis) != 0 {
			t.Errorf("%s: refused but reached the hub", tc.body)
		}
	}
	req := httptest.NewRequest("POST", "/disconnect", strings.NewReader(`{"user":"a"}`))
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("without key: %d", rec.Code)
	}
}

// The batch items' single-scan parser answers exactly what parsePublish does.
func TestParseBatchItemMatchesParsePublish(t *testing.T) {
	items := []string{
		`{"user":"a","data":1}`, `{"channel":"news","data":{"x":[1, 2]}}`, `{"broadcast":true,"data":"x"}`,
		`{"broadcast":false,"user":"a","data":null}`, `{"user":"a\u00e9","data":1}`, `{"channel":"a b","data":1}`,
		`{"channel":"news","idempotency_key":"k","data":1}`, `{"broadcast":true,"idempotency_key":"k","data":1}`,
		`{"user":"a"}`, `{}`, `{"usr":"a","data":1}`, `{"user":1,"data":1}`, `{"user":"a","data":1,}`,
		`{"user":"a","broadcast":true,"data":1}`, `{"messages":[]}`, `[1]`, `{"user":"a","data":1} x`,
		`{"user":"a","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
		` { "user" : "a" , "data" : { "b" : "c d" } } `,
	}
	var p cmdParser
	for _, item := range items {
		// A batch's items come out of its body, which compactJSONText
		// compacted (and checked) whole.
		in := []byte(item)
		if c, err := compactJSONText([]byte(item)); err == nil {
			in = c
		}
		fast, fastMsg := parseBatchItem(&p, in)
		slow, slowMsg := parsePublish([]byte(item))
		if (fastMsg == "") != (slowMsg == "") || (fastMsg == "" && fmt.Sprintf("%q %v %v %v %s", fast.User, fast.Broadcast, deref(fast.Channel), deref(fast.IdempotencyKey), fast.Data) !=
			fmt.Sprintf("%q %v %v %v %s", slow.User, slow.Broadcast, deref(slow.Channel), deref(slow.IdempotencyKey), slow.Data)) {
			t.Errorf("%s: fast %+v %q, slow %+v %q", item, fast, fastMsg, slow, slowMsg)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

package engine

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type recordingHub struct {
	mu        sync.Mutex
	user      string
	data      string
	broadcast bool
	calls     int
}

func (h *recordingHub) Publish(user string, data []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.user, h.data = user, string(data)
	return 2
}

func (h *recordingHub) Broadcast(data []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.broadcast, h.data = true, string(data)
	return 7
}

func TestPublishHandler(t *testing.T) {
	const key = "publish-key-for-tests-0123456789"
	cases := []struct {
		name       string
		method     string
		auth       string
		body       string
		status     int
		recipients int
		wantUser   string
		wantData   string
		broadcast  bool
		errorHas   string
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
		{name: "both targets", method: "POST", auth: "Bearer " + key, body: `{"user":"u","broadcast":true,"data":1}`, status: 400, errorHas: "not both"},
		{name: "no data", method: "POST", auth: "Bearer " + key, body: `{"user":"u"}`, status: 400, errorHas: `"data"`},
		{name: "channel not yet", method: "POST", auth: "Bearer " + key, body: `{"channel":"news","data":1}`, status: 400, errorHas: "channel"},
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
			if hub.user != tc.wantUser || hub.data != tc.wantData || hub.broadcast != tc.broadcast || hub.calls != 1 {
				t.Errorf("hub got user=%q data=%q broadcast=%v calls=%d", hub.user, hub.data, hub.broadcast, hub.calls)
			}
		})
	}
}

func TestNewPublishHandlerRefusesEmptyKey(t *testing.T) {
	if _, err := NewPublishHandler(&recordingHub{}, "", 0); err == nil {
		t.Fatal("empty key accepted")
	}
}

package peer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

type fakeConn struct {
	mu  sync.Mutex
	got [][]byte
}

func (f *fakeConn) Send(p []byte) {
	f.mu.Lock()
	f.got = append(f.got, p)
	f.mu.Unlock()
}

func TestHubPublishAndBroadcast(t *testing.T) {
	h := NewHub()
	a1, a2, b := &fakeConn{}, &fakeConn{}, &fakeConn{}
	h.Add("ann", a1)
	h.Add("ann", a2)
	h.Add("bob", b)
	if n := h.Publish("ann", []byte(`{"x":1}`)); n != 2 {
		t.Fatalf("publish to ann reached %d, want 2", n)
	}
	if n := h.Broadcast([]byte(`"hi"`)); n != 3 {
		t.Fatalf("broadcast reached %d, want 3", n)
	}
	h.Remove("ann", a1)
	h.Remove("ann", a1) // twice is harmless
	if n := h.Broadcast([]byte(`"again"`)); n != 2 {
		t.Fatalf("broadcast after remove reached %d, want 2", n)
	}
	if len(a1.got) != 2 || len(a2.got) != 3 || len(b.got) != 2 {
		t.Fatalf("deliveries a1 %d a2 %d b %d", len(a1.got), len(a2.got), len(b.got))
	}
	var m struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(a2.got[0], &m); err != nil || m.Type != "message" || string(m.Data) != `{"x":1}` {
		t.Fatalf("message %s: %+v %v", a2.got[0], m, err)
	}
}

func TestAdmit(t *testing.T) {
	s, err := New(Config{WSPath: "/ws", TicketTTL: time.Minute, PublishKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := s.tickets.Issue(ticket.Claims{Subject: "maggie"}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, target string
		status       int // 0: admitted
	}{
		{"wrong path", "/other?ticket=" + tk.String(), 404},
		{"no ticket", "/ws", 401},
		{"unknown ticket", "/ws?ticket=AAAAAAAAAAAAAAAAAAAAAA", 401},
		{"good ticket", "/ws?ticket=" + tk.String(), 0},
		{"used ticket", "/ws?ticket=" + tk.String(), 401},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		user, ok := s.Admit(w, httptest.NewRequest(http.MethodGet, c.target, nil))
		switch {
		case c.status == 0 && (!ok || user != "maggie"):
			t.Errorf("%s: not admitted (%d)", c.name, w.Code)
		case c.status != 0 && (ok || w.Code != c.status || w.Header().Get("Connection") != "close"):
			t.Errorf("%s: ok=%v status %d Connection %q, want %d and close", c.name, ok, w.Code, w.Header().Get("Connection"), c.status)
		}
	}
}

func TestWelcomeIDsAreUnique(t *testing.T) {
	s, err := New(Config{PublishKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := string(s.Welcome("maggie")), string(s.Welcome("maggie"))
	if a == b || !strings.Contains(a, `"type":"welcome"`) || !strings.Contains(a, `"user":"maggie"`) {
		t.Fatalf("welcomes %s / %s", a, b)
	}
}

// TestParseFlagsCompression: -compression takes turnstile's values, so that
// the load tool starts every server with the same flags.
func TestParseFlagsCompression(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
		bad  bool
	}{
		{nil, false, false},
		{[]string{"-compression", "off"}, false, false},
		{[]string{"-compression", "on"}, true, false},
		{[]string{"-compression", "yes"}, false, true},
	} {
		c, err := ParseFlags("peer-test", append([]string{"-publish-key", "k"}, tc.args...))
		if (err != nil) != tc.bad || c.Compression != tc.want {
			t.Errorf("%v: compression %v, err %v", tc.args, c.Compression, err)
		}
	}
}

package engine

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

const (
	appOrigin   = "https://app.example"
	otherOrigin = "https://other.example"
)

// bindingCases are DESIGN 1.7's Origin-bound tickets and the ticket in
// Sec-WebSocket-Protocol. request gets the ticket's text; bound is the
// Origin the ticket was issued to.
var bindingCases = []struct {
	name     string
	bound    string
	request  func(tk string) string
	status   int
	protocol string // the 101's Sec-WebSocket-Protocol
	spent    bool
}{
	{"bound, same Origin", appOrigin, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: "+appOrigin+"\r\n")
	}, 101, "", true},
	{"bound, other allowed Origin: 403 and spent", appOrigin, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: "+otherOrigin+"\r\n")
	}, 403, "", true},
	{"bound, no Origin: 403 and spent", appOrigin, func(tk string) string {
		return upgradeRequest("/ws", tk, "")
	}, 403, "", true},
	{"unbound, any allowed Origin", "", func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: "+otherOrigin+"\r\n")
	}, 101, "", true},
	{"unbound, no Origin", "", func(tk string) string { return upgradeRequest("/ws", tk, "") }, 101, "", true},

	{"protocol ticket beside v1", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+"\r\n")
	}, 101, "turnstile.v1", true},
	{"protocol ticket first, v1 in a second header", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.ticket."+tk+"\r\nSec-WebSocket-Protocol: turnstile.v1\r\n")
	}, 101, "turnstile.v1", true},
	{"protocol ticket, bound, same Origin", appOrigin, func(tk string) string {
		return upgradeRequest("/ws", "", "Origin: "+appOrigin+"\r\nSec-WebSocket-Protocol: turnstile.v1,turnstile.ticket."+tk+"\r\n")
	}, 101, "turnstile.v1", true},
	{"query ticket, v1 offered", "", func(tk string) string {
		return upgradeRequest("/ws", tk, "Sec-WebSocket-Protocol: chat, turnstile.v1\r\n")
	}, 101, "turnstile.v1", true},
	{"query ticket, other protocol only", "", func(tk string) string {
		return upgradeRequest("/ws", tk, "Sec-WebSocket-Protocol: chat\r\n")
	}, 101, "", true},
	{"query and protocol ticket: 400, unspent", "", func(tk string) string {
		return upgradeRequest("/ws", tk, "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+"\r\n")
	}, 400, "", false},
	{"empty query ticket and protocol ticket: 400", "", func(tk string) string {
		return upgradeRequest("/ws?ticket=", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+"\r\n")
	}, 400, "", false},
	{"two protocol tickets: 400, unspent", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+", turnstile.ticket."+tk+"\r\n")
	}, 400, "", false},
	{"two protocol tickets in two headers", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+"\r\nSec-WebSocket-Protocol: turnstile.ticket."+tk+"\r\n")
	}, 400, "", false},
	{"protocol ticket without v1: 400, unspent", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.ticket."+tk+"\r\n")
	}, 400, "", false},
	{"malformed protocol ticket: 401", "", func(tk string) string {
		return upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk[:10]+"\r\n")
	}, 401, "", false},
	{"protocol ticket, Origin not allowed: 403, unspent", appOrigin, func(tk string) string {
		return upgradeRequest("/ws", "", "Origin: https://evil.example\r\nSec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+tk+"\r\n")
	}, 403, "", false},
}

func TestAdmissionBinding(t *testing.T) {
	for _, tc := range bindingCases {
		t.Run(tc.name, func(t *testing.T) {
			s, st := startServer(t, Config{Origins: []string{appOrigin, otherOrigin}})
			tk := st.addClaims(ticket.Claims{Subject: "maggie", Origin: tc.bound})
			conn := dial(t, s)
			if _, err := io.WriteString(conn, tc.request(tk)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp := readResponse(t, br)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.protocol {
				t.Errorf("Sec-WebSocket-Protocol = %q, want %q", got, tc.protocol)
			}
			if spent := !st.has(tk); spent != tc.spent {
				t.Errorf("ticket spent = %v, want %v", spent, tc.spent)
			}
			if tc.status == 101 {
				if f := readFrame(t, br); !strings.Contains(string(f.payload), `"user":"maggie"`) {
					t.Errorf("welcome = %q", f.payload)
				}
			}
		})
	}
}

// The scratch Origin of one handshake never leaks into the next: a bound
// ticket after an upgrade that carried its Origin still needs its own.
func TestAdmissionBindingResetsBetweenHandshakes(t *testing.T) {
	s, st := startServer(t, Config{Origins: []string{appOrigin}, Loops: 1})
	first := st.add("maggie")
	conn := dial(t, s)
	io.WriteString(conn, upgradeRequest("/ws", first, "Origin: "+appOrigin+"\r\n"))
	if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != 101 {
		t.Fatalf("first: status %d", resp.StatusCode)
	}
	bound := st.addClaims(ticket.Claims{Subject: "maggie", Origin: appOrigin})
	conn = dial(t, s)
	io.WriteString(conn, upgradeRequest("/ws", bound, ""))
	if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != 403 {
		t.Fatalf("bound ticket without Origin after one with: status %d, want 403", resp.StatusCode)
	}
}

// What Origin capture and the protocol ticket cost an admission, beside
// the plain accept of BenchmarkHandshake (same run):
// go test -run '^$' -bench 'Handshake' -benchmem ./engine
func BenchmarkHandshakeBinding(b *testing.B) {
	for _, tc := range []struct{ name, req string }{
		{"accept_origin", upgradeRequest("/ws", benchGood, "Origin: https://app.example.com\r\n")},
		{"accept_protocol", upgradeRequest("/ws", "", "Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket."+benchGood+"\r\n")},
	} {
		hdr := []byte(tc.req)
		b.Run("engine/"+tc.name, func(b *testing.B) {
			s, err := New(Config{Store: fixedStore{good: []byte(benchGood)}, Origins: []string{"https://app.example.com"}})
			if err != nil {
				b.Fatal(err)
			}
			l := newLoop(s, nil, 0)
			c := &Conn{}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := l.admit(c, hdr); !ok {
					b.Fatal("refused")
				}
				l.srv.openConns.Add(-1)
			}
		})
	}
}

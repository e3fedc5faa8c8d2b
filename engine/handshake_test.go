package engine

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// admissionCases cover every row of DESIGN 1.3's table. A case with a
// ticket gets a fresh valid one; spent says whether it must be used up.
var admissionCases = []struct {
	name    string
	cfg     Config
	request func(tk string) string
	status  int
	header  string // a response header line that must be present
	reason  RejectReason
	spent   bool
}{
	{"valid", Config{}, func(tk string) string { return upgradeRequest("/ws", tk, "") }, 101, "", 0, true},
	{"not GET", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), "GET", "POST", 1)
	}, 400, "", RejectBadRequest, false},
	{"malformed request line", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), " HTTP/1.1", "", 1)
	}, 400, "", RejectBadRequest, false},
	{"malformed header", Config{}, func(tk string) string { return upgradeRequest("/ws", tk, "NoColonHere\r\n") }, 400, "", RejectBadRequest, false},
	{"missing Upgrade", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), "Upgrade: websocket\r\n", "", 1)
	}, 400, "", RejectBadRequest, false},
	{"missing Connection", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), "Connection: Upgrade\r\n", "", 1)
	}, 400, "", RejectBadRequest, false},
	{"missing key", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1)
	}, 400, "", RejectBadRequest, false},
	{"version 8", Config{}, func(tk string) string {
		return strings.Replace(upgradeRequest("/ws", tk, ""), "Version: 13", "Version: 8", 1)
	}, 426, "Sec-Websocket-Version: 13", RejectVersion, false},
	{"other path", Config{}, func(tk string) string { return upgradeRequest("/other", tk, "") }, 404, "", RejectNotFound, false},
	{"path prefix", Config{}, func(tk string) string { return upgradeRequest("/ws/x", tk, "") }, 404, "", RejectNotFound, false},
	{"header too large", Config{MaxHeaderBytes: 1024}, func(tk string) string {
		return upgradeRequest("/ws", tk, "X-Pad: "+strings.Repeat("a", 1024)+"\r\n")
	}, 431, "", RejectHeaderTooLarge, false},
	{"header at the limit", Config{MaxHeaderBytes: 1024}, func(tk string) string {
		r := upgradeRequest("/ws", tk, "X-Pad: \r\n")
		return upgradeRequest("/ws", tk, "X-Pad: "+strings.Repeat("a", 1024-len(r))+"\r\n")
	}, 101, "", 0, true},
	{"origin with empty allow-list", Config{}, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: https://app.example\r\n")
	}, 403, "", RejectOrigin, false},
	{"origin not listed", Config{Origins: []string{"https://app.example"}}, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: https://evil.example\r\n")
	}, 403, "", RejectOrigin, false},
	{"origin scheme differs", Config{Origins: []string{"https://app.example"}}, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: http://app.example\r\n")
	}, 403, "", RejectOrigin, false},
	{"origin listed", Config{Origins: []string{"https://a.example", "https://app.example"}}, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: https://app.example\r\n")
	}, 101, "", 0, true},
	{"origin star", Config{Origins: []string{"*"}}, func(tk string) string {
		return upgradeRequest("/ws", tk, "Origin: https://any.example\r\n")
	}, 101, "", 0, true},
	{"no origin, list set", Config{Origins: []string{"https://app.example"}}, func(tk string) string {
		return upgradeRequest("/ws", tk, "")
	}, 101, "", 0, true},
	{"ticket missing", Config{}, func(string) string { return upgradeRequest("/ws", "", "") }, 401, "", RejectTicket, false},
	{"ticket malformed", Config{}, func(tk string) string { return upgradeRequest("/ws", tk[:20]+"!!", "") }, 401, "", RejectTicket, false},
	{"ticket short", Config{}, func(tk string) string { return upgradeRequest("/ws", tk[:21], "") }, 401, "", RejectTicket, false},
	{"ticket unknown", Config{}, func(string) string { return upgradeRequest("/ws", "ZZZZZZZZZZZZZZZZZZZZZZ", "") }, 401, "", RejectTicket, false},
	{"ticket among other params", Config{}, func(tk string) string {
		return upgradeRequest("/ws", "x&a=b", "")[:0] + strings.Replace(upgradeRequest("/ws", "", ""), "/ws", "/ws?a=b&ticket="+tk+"&c=d", 1)
	}, 101, "", 0, true},
}

// DESIGN 1.3's order: every stateless check comes before the ticket, so a
// request without a ticket that is also wrong in another way gets that
// other answer, not 401.
var admissionOrderCases = []struct {
	name    string
	cfg     Config
	request string
	status  int
	reason  RejectReason
}{
	{"no ticket, version 8", Config{},
		strings.Replace(upgradeRequest("/ws", "", ""), "Version: 13", "Version: 8", 1), 426, RejectVersion},
	{"no ticket, missing Upgrade", Config{},
		strings.Replace(upgradeRequest("/ws", "", ""), "Upgrade: websocket\r\n", "", 1), 400, RejectBadRequest},
	{"no ticket, origin not allowed", Config{},
		upgradeRequest("/ws", "", "Origin: https://evil.example\r\n"), 403, RejectOrigin},
	{"malformed ticket, origin not allowed", Config{},
		upgradeRequest("/ws", "short", "Origin: https://evil.example\r\n"), 403, RejectOrigin},
	{"no ticket, server at capacity", Config{MaxConns: 1},
		upgradeRequest("/ws", "", ""), 401, RejectTicket},
}

func TestAdmissionOrder(t *testing.T) {
	for _, tc := range admissionOrderCases {
		t.Run(tc.name, func(t *testing.T) {
			s, st := startServer(t, tc.cfg)
			if tc.cfg.MaxConns > 0 {
				connect(t, s, st, "maggie")
			}
			conn := dial(t, s)
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatal(err)
			}
			if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := s.Stats().Rejected[tc.reason]; got != 1 {
				t.Errorf("Rejected[%s] = %d, want 1", tc.reason, got)
			}
		})
	}
}

func TestAdmissionTable(t *testing.T) {
	for _, tc := range admissionCases {
		t.Run(tc.name, func(t *testing.T) {
			s, st := startServer(t, tc.cfg)
			tk := st.add("maggie")
			conn := dial(t, s)
			if _, err := io.WriteString(conn, tc.request(tk)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp := readResponse(t, br)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if spent := !st.has(tk); spent != tc.spent {
				t.Errorf("ticket spent = %v, want %v", spent, tc.spent)
			}
			if tc.status == 101 {
				readFrame(t, br) // welcome
				return
			}
			if !resp.Close { // net/http moves "Connection: close" here
				t.Error("response lacks Connection: close")
			}
			if tc.header != "" {
				k, v, _ := strings.Cut(tc.header, ": ")
				if resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			body, _ := io.ReadAll(resp.Body)
			if len(body) == 0 {
				t.Error("empty body")
			}
			expectEOF(t, br)
			if got := s.Stats().Rejected[tc.reason]; got != 1 {
				t.Errorf("Rejected[%s] = %d, want 1", tc.reason, got)
			}
		})
	}
}

func TestAdmissionCapacity(t *testing.T) {
	s, st := startServer(t, Config{MaxConns: 1})
	connect(t, s, st, "maggie")
	tk := st.add("maggie")
	conn := dial(t, s)
	io.WriteString(conn, upgradeRequest("/ws", tk, ""))
	br := bufio.NewReader(conn)
	if resp := readResponse(t, br); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if !st.has(tk) {
		t.Fatal("a ticket refused for capacity was spent")
	}
	if got := s.Stats().Rejected[RejectCapacity]; got != 1 {
		t.Fatalf("Rejected[capacity] = %d", got)
	}
}

func TestAdmissionReplay(t *testing.T) {
	s, st := startServer(t, Config{})
	tk := st.add("maggie")
	for i, want := range []int{101, 401} {
		conn := dial(t, s)
		io.WriteString(conn, upgradeRequest("/ws", tk, ""))
		if resp := readResponse(t, bufio.NewReader(conn)); resp.StatusCode != want {
			t.Fatalf("use %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

func TestAdmissionOneTicketManyConnections(t *testing.T) {
	t.Run("memStore", func(t *testing.T) {
		s, st := startServer(t, Config{})
		oneTicketRace(t, s, st.add("maggie"))
	})
	t.Run("ticket.Map", func(t *testing.T) {
		m := ticket.NewMap(ticket.MapConfig{Capacity: 1024})
		s, _ := startServer(t, Config{Store: m})
		tk, err := m.Issue(ticket.Claims{Subject: "maggie"}, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		oneTicketRace(t, s, tk.String())
	})
}

// oneTicketRace sends 50 upgrades with the same ticket at once: exactly one
// may get 101.
func oneTicketRace(t *testing.T, s *Server, tk string) {
	const n = 50
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	start := make(chan struct{})
	for range n {
		conn := dial(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			io.WriteString(conn, upgradeRequest("/ws", tk, ""))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				statuses <- 0
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[101] != 1 || count[401] != n-1 {
		t.Fatalf("statuses %v, want one 101 and %d 401", count, n-1)
	}
}

// The deadline is fixed from accept: bytes trickling in do not extend it.
func TestHandshakeDeadline(t *testing.T) {
	const timeout = 600 * time.Millisecond
	s, st := startServer(t, Config{HandshakeTimeout: timeout})
	req := upgradeRequest("/ws", st.add("maggie"), "")
	// Before the dial: the server's deadline starts at its accept, which
	// follows this; taken after, a dial that returned late under load made
	// the close look early.
	start := time.Now()
	conn := dial(t, s)
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	var elapsed time.Duration
	func() {
		for i := 0; i < len(req)-1; i++ { // never the last byte
			select {
			case elapsed = <-closed:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{req[i]}); err != nil {
				elapsed = <-closed
				return
			}
		}
		t.Fatal("whole request sent without the server closing")
	}()
	if elapsed < timeout {
		t.Fatalf("closed after %v, before the %v deadline", elapsed, timeout)
	}
	if got := s.Stats().Rejected[RejectTimeout]; got != 1 {
		t.Fatalf("Rejected[timeout] = %d", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the loops' concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Even at debug level, no log line carries a ticket.
func TestTicketNeverLogged(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, st := startServer(t, Config{Logger: logger})
	var tickets []string
	for _, extra := range []string{"Origin: https://evil.example\r\n", "Sec-WebSocket-Version: 8\r\n", ""} {
		tk := st.add("maggie")
		tickets = append(tickets, tk)
		conn := dial(t, s)
		io.WriteString(conn, strings.Replace(upgradeRequest("/ws", tk, extra), "Sec-WebSocket-Version: 13\r\nSec", "Sec", 1))
		readResponse(t, bufio.NewReader(conn))
	}
	conn := dial(t, s)
	io.WriteString(conn, upgradeRequest("/nope", "QQQQQQQQQQQQQQQQQQQQQQ", ""))
	readResponse(t, bufio.NewReader(conn))
	tickets = append(tickets, "QQQQQQQQQQQQQQQQQQQQQQ")
	if !strings.Contains(logs.String(), "handshake rejected") {
		t.Fatalf("no rejection logged at debug level:\n%s", logs.String())
	}
	for _, tk := range tickets {
		if strings.Contains(logs.String(), tk) {
			t.Fatalf("ticket %s in the logs:\n%s", tk, logs.String())
		}
	}
}

// arenaStore hands out claims whose strings point into one buffer, as
// ticket.Map's point into its arena.
type arenaStore struct {
	fixedStore
	buf []byte
}

func (s arenaStore) Redeem(text []byte, now time.Time) (ticket.Claims, error) {
	if _, err := s.fixedStore.Redeem(text, now); err != nil {
		return ticket.Claims{}, err
	}
	return ticket.Claims{
		Subject:  unsafe.String(&s.buf[0], 6),
		Channels: []string{unsafe.String(&s.buf[6], 4)},
	}, nil
}

// A connection keeps copies of the claims it holds for its life, not the
// store's strings: one of ticket.Map's, kept for hours, would hold its
// whole 4 KiB arena chunk.
func TestAdmitCopiesClaims(t *testing.T) {
	st := arenaStore{fixedStore: fixedStore{good: []byte(benchGood)}, buf: []byte("maggienews")}
	s, err := New(Config{Store: st, MaxConnsPerUser: 5})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(s, nil, 0)
	c := &Conn{}
	if _, ok := l.admit(c, []byte(upgradeRequest("/ws", benchGood, ""))); !ok {
		t.Fatal("upgrade refused")
	}
	if c.User() != "maggie" || len(c.grants) != 1 || c.grants[0] != "news" {
		t.Fatalf("user %q, grants %q", c.User(), c.grants)
	}
	if unsafe.StringData(c.User()) == &st.buf[0] || unsafe.StringData(c.grants[0]) == &st.buf[6] {
		t.Fatal("the connection kept the store's strings, not copies")
	}
	s.quota.m.Range(func(user string, _ int32) bool {
		if unsafe.StringData(user) == &st.buf[0] {
			t.Error("the per-user quota keeps the store's string as its key")
		}
		return true
	})
}

// Frames sent in the upgrade request's write wait for the welcome and are
// then read, on both welcome paths: written with the 101 (the embedded
// broker, in-process) and written later by a task (a remote broker); a
// protocol error among them closes with 1002 either way.
func TestPipelinedFramesAfterTheWelcome(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := "in-process"
		if remote {
			name = "remote"
		}
		t.Run(name, func(t *testing.T) {
			mem, err := broker.NewMemory(broker.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			var b broker.Broker = mem
			if remote {
				b = &remoteBroker{Broker: mem}
			}
			s, st := startServer(t, Config{Broker: b, Echo: true})
			t.Cleanup(func() { b.Close() })

			conn := dial(t, s)
			req := upgradeRequest(s.cfg.Path, st.add("maggie"), "")
			pipelined := append(clientFrame(true, ws.OpPing, []byte("p")), clientFrame(true, ws.OpText, []byte(`"hi"`))...)
			if _, err := conn.Write(append([]byte(req), pipelined...)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			if resp := readResponse(t, br); resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for i, want := range []struct {
				op   ws.OpCode
				text string
			}{{ws.OpText, `"type":"welcome"`}, {ws.OpPong, "p"}, {ws.OpText, `"hi"`}} {
				f := readFrame(t, br)
				if f.op != want.op || !strings.Contains(string(f.payload), want.text) {
					t.Fatalf("frame %d: %v %q, want %v with %s", i, f.op, f.payload, want.op, want.text)
				}
			}

			bad := dial(t, s)
			unmasked := []byte{0x81, 0x01, 'x'} // a client frame must be masked
			if _, err := bad.Write(append([]byte(upgradeRequest(s.cfg.Path, st.add("maggie"), "")), unmasked...)); err != nil {
				t.Fatal(err)
			}
			br = bufio.NewReader(bad)
			if resp := readResponse(t, br); resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if f := readFrame(t, br); !strings.Contains(string(f.payload), `"type":"welcome"`) {
				t.Fatalf("first frame %q, want the welcome", f.payload)
			}
			expectClose(t, br, ws.StatusProtocolError)
		})
	}
}

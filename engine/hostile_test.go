package engine_test

// Hostile clients: each test plays one kind of attack or broken peer and
// checks that the server refuses it as DESIGN 1.3 says, stays bounded in
// memory, and keeps serving everybody else.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/engine"
)

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// totalAlloc returns the bytes allocated so far by the process.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// awaitServerClose waits up to d for the server to end c's TCP connection,
// discarding what it sends, and returns what was read and how it ended
// ("EOF", "reset" or "timeout").
func awaitServerClose(c net.Conn, d time.Duration) ([]byte, string) {
	c.SetReadDeadline(time.Now().Add(d))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	return got.Bytes(), describeEnd(err)
}

func mib(n uint64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// TestSlowloris: a client that sends its upgrade request one byte at a time
// is closed at the fixed handshake deadline, which its bytes do not extend.
func TestSlowloris(t *testing.T) {
	const timeout = time.Second
	const interval = 200 * time.Millisecond
	s := startServer(t, engine.Config{HandshakeTimeout: timeout})
	const clients = 5
	type result struct {
		elapsed time.Duration
		sent    int
		err     error
	}
	results := make(chan result, clients)
	for i := range clients {
		go func() {
			elapsed, sent, err := slowloris(s, fmt.Sprintf("loris%d", i), interval)
			results <- result{elapsed, sent, err}
		}()
	}
	for range clients {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		t.Logf("closed after %v and %d request bytes", r.elapsed.Round(time.Millisecond), r.sent)
		// Closing well before the deadline would be another bug (e.g.
		// a per-byte timeout shorter than the handshake timeout).
		if r.elapsed < timeout*8/10 {
			t.Errorf("closed after %v, before the %v deadline", r.elapsed, timeout)
		}
	}
	if got := s.Stats().Rejected[engine.RejectTimeout]; got < clients {
		t.Errorf("Stats().Rejected[timeout] = %d, want >= %d", got, clients)
	}
}

// slowloris trickles a valid upgrade request (with a live ticket, so that
// finishing it would be admitted) and returns when the server closes the
// connection: how long that took and how many bytes were sent. It fails
// unless the server closes long before the request is complete, without
// admitting it.
func slowloris(s *testServer, user string, interval time.Duration) (time.Duration, int, error) {
	conn, err := net.DialTimeout("tcp", s.addr, ioWait)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	start := time.Now()
	req := upgradeRequest("/ws", issueTicketNoT(s, user))
	// The request takes len(req)*interval (about 35 s) to send in full; a
	// server whose deadline is reset by each byte would never close it.
	// Give up well before the end: 15 s is 15 times the deadline.
	giveUp := start.Add(15 * time.Second)
	for sent := 0; sent < len(req) && time.Now().Before(giveUp); sent++ {
		conn.SetWriteDeadline(time.Now().Add(ioWait))
		if _, err := conn.Write(req[sent : sent+1]); err != nil {
			return time.Since(start), sent, checkLorisEnd(sent, nil, describeEnd(err))
		}
		conn.SetReadDeadline(time.Now().Add(interval))
		var b [512]byte
		n, err := conn.Read(b[:])
		if n > 0 {
			got, end := awaitServerClose(conn, ioWait)
			return time.Since(start), sent + 1, checkLorisEnd(sent+1, append(b[:n], got...), end)
		}
		if err != nil && !isTimeout(err) {
			return time.Since(start), sent + 1, checkLorisEnd(sent+1, nil, describeEnd(err))
		}
	}
	return 0, 0, fmt.Errorf("%s: still open after %v and %d of %d request bytes", user, time.Since(start).Round(time.Millisecond), len(req), len(req))
}

func checkLorisEnd(sent int, got []byte, end string) error {
	if bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("slowloris admitted: %q", got)
	}
	if end != "EOF" && end != "reset" && !strings.Contains(end, "broken pipe") {
		return fmt.Errorf("slowloris: connection ended with %s after %d bytes", end, sent)
	}
	return nil
}

// issueTicketNoT issues a ticket outside a test goroutine's *testing.T.
func issueTicketNoT(s *testServer, user string) string {
	tk, err := s.store.Issue(claimsFor(user), time.Now(), time.Minute)
	if err != nil {
		panic(err)
	}
	return tk.String()
}

// TestSilentConnections: 1,000 connections that never send a byte are all
// closed at the handshake deadline, and the server's heap comes back. Two
// rounds: the first may leave grown tables behind (capacity kept for the
// next burst); the second must not grow the heap further, or something is
// kept per connection.
func TestSilentConnections(t *testing.T) {
	const n = 1000
	const timeout = time.Second
	s := startServer(t, engine.Config{HandshakeTimeout: timeout})
	// Warm the server up (loops, buffers) before taking the baseline.
	for range 3 {
		c := dialWS(t, s, "warm")
		c.closeNormally(closeNormal)
	}
	before := heapAfterGC()
	peak1 := silentRound(t, s, n, timeout)
	mid := heapAfterGC()
	peak2 := silentRound(t, s, n, timeout)
	after := heapAfterGC()
	t.Logf("heap: before %s, %d silent conns %s, after round 1 %s, round 2 peak %s, after round 2 %s",
		mib(before), n, mib(peak1), mib(mid), mib(peak2), mib(after))
	if got := s.Stats().Rejected[engine.RejectTimeout]; got != 2*n {
		t.Errorf("Stats().Rejected[timeout] = %d, want %d", got, 2*n)
	}
	// Generous bounds: 1 KiB per connection for the first round (tables
	// sized for the burst), 256 B per connection for the second.
	if after > before && after-before > n*1024 {
		t.Errorf("heap grew by %s over two rounds of %d connections (bound %s)", mib(after-before), n, mib(n*1024))
	}
	if after > mid && after-mid > n*256 {
		t.Errorf("heap grew by %s in the second round of %d connections (bound %s): kept per connection", mib(after-mid), n, mib(n*256))
	}
}

// silentRound opens n connections that send nothing, checks that the server
// closes every one within the deadline plus a generous margin, and returns
// the heap measured while they were all open.
func silentRound(t *testing.T, s *testServer, n int, timeout time.Duration) uint64 {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", s.addr, ioWait)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	peak := heapAfterGC()
	var open, sentBytes int
	for _, c := range conns {
		got, end := awaitServerClose(c, timeout+15*time.Second)
		if end == "timeout" {
			open++
		}
		sentBytes += len(got)
	}
	if open > 0 {
		t.Fatalf("%d of %d silent connections still open after the deadline", open, n)
	}
	if sentBytes > 0 {
		t.Logf("the server sent %d bytes to silent connections", sentBytes)
	}
	// Let the loops run OnClose for the last of them.
	time.Sleep(200 * time.Millisecond)
	return peak
}

// TestHeaderBomb: request heads over MaxHeaderBytes get 431 once the limit
// is passed, without the server buffering the rest.
func TestHeaderBomb(t *testing.T) {
	s := startServer(t, engine.Config{})
	var manyHeaders bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&manyHeaders, "X-Bomb-%d: %d\r\n", i, i)
	}
	huge := "X-Huge: " + strings.Repeat("a", 1<<20)
	bombs := []struct {
		name string
		req  []byte
	}{
		{"5000 headers", upgradeRequest("/ws", "x", strings.TrimSuffix(manyHeaders.String(), "\r\n"))},
		{"one 1 MiB header", upgradeRequest("/ws", "x", huge)},
		{"1 MiB request line", []byte("GET /ws?ticket=" + strings.Repeat("A", 1<<20) + " HTTP/1.1\r\n\r\n")},
		{"1 MiB without a line end", bytes.Repeat([]byte("G"), 1<<20)},
		{"just over the limit", upgradeRequest("/ws", "x", "X-Pad: "+strings.Repeat("p", engine.DefaultMaxHeaderBytes))},
	}
	const rounds = 5
	// What one small refused request costs (client reader included), to
	// subtract from each bomb.
	start := totalAlloc()
	for range rounds {
		if status, _ := bomb(t, s.addr, upgradeRequest("/ws", "x")); status != 401 {
			t.Fatalf("small request with a bad ticket: %d, want 401", status)
		}
	}
	base := (totalAlloc() - start) / rounds
	var results []caseResult
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			start := totalAlloc()
			for range rounds {
				status, end := bomb(t, s.addr, b.req)
				if status != 431 {
					t.Fatalf("status %d, want 431", status)
				}
				if end != "EOF" && end != "reset" {
					t.Fatalf("connection after 431: %s, want closed", end)
				}
			}
			extra := int64((totalAlloc()-start)/rounds) - int64(base)
			results = append(results, caseResult{id: b.name, desc: fmt.Sprintf("%d bytes sent", len(b.req)),
				want: "431", got: fmt.Sprintf("431, %+d B allocated beyond a small 401", extra), pass: true})
			// The server may read a socket buffer's worth, never the bomb.
			if extra > 128<<10 {
				t.Errorf("%d bytes allocated per %d-byte bomb beyond a small request", extra, len(b.req))
			}
		})
	}
	logTable(t, "header bombs", results)
}

// bomb writes req while reading the answer (the server may answer and close
// long before the client is done writing) and returns the status and how
// the connection ended.
func bomb(t *testing.T, addr string, req []byte) (int, string) {
	t.Helper()
	c := rawDial(t, addr)
	go func() {
		c.conn.SetWriteDeadline(time.Now().Add(ioWait))
		c.conn.Write(req) // fails once the server closes: expected
	}()
	resp, err := c.readResponse()
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	if resp.headers["connection"] != "close" {
		t.Errorf("status %d without Connection: close", resp.status)
	}
	return resp.status, c.awaitEOF()
}

// TestHugeDeclaredLength: a frame header declaring 2^62 bytes is refused
// with 1009 from its header alone, and a header declaring the whole allowed
// size without sending it makes the server allocate nothing like that size.
func TestHugeDeclaredLength(t *testing.T) {
	const maxMessage = 16 << 20
	s := startServer(t, echoConfig(maxMessage))
	const conns = 20

	start := totalAlloc()
	for i := range conns {
		c := dialWS(t, s, "huge")
		c.send(frameHeader(true, opBinary, 1<<62))
		if end := c.awaitClose(); end.code != closeTooBig || (end.tcp != "EOF" && end.tcp != "reset") {
			t.Fatalf("conn %d: %v, want close 1009 and TCP closed", i, end)
		}
	}
	refused := totalAlloc() - start
	t.Logf("2^62 declared: %d B allocated per connection (dial and handshake included)", refused/conns)
	if refused > conns*(256<<10) {
		t.Errorf("allocated %s for %d refused 2^62-byte frames", mib(refused), conns)
	}

	// Declared at the limit, only a few bytes sent: the server must wait
	// for the payload as it comes, not reserve the declared size.
	clients := make([]*wsClient, conns)
	start = totalAlloc()
	for i := range clients {
		c := dialWS(t, s, "huge")
		c.send(append(frameHeader(true, opBinary, maxMessage), "0123456789"...))
		clients[i] = c
	}
	// Prove the frames were read: a ping on another connection is answered
	// after the loops processed them (best effort), then look.
	probe := dialWS(t, s, "probe")
	probe.send(pingFrame([]byte("p")))
	if m, err := probe.readMessage(); err != nil || m.op != opPong {
		t.Fatalf("probe: %v %v", m, err)
	}
	pending := totalAlloc() - start
	t.Logf("%d-byte frame declared, 10 bytes sent: %d B allocated per connection", maxMessage, pending/conns)
	if pending > conns*(1<<20) {
		t.Errorf("allocated %s for %d frames declaring %s each", mib(pending), conns, mib(maxMessage))
	}
	for _, c := range clients {
		c.conn.Close()
	}
}

// TestUnmaskedFrames: every client frame must be masked; an unmasked one,
// of any opcode, closes with 1002.
func TestUnmaskedFrames(t *testing.T) {
	s := startServer(t, echoConfig(0))
	cases := []struct {
		name  string
		frame []byte
	}{
		{"text", unmaskedFrame(true, opText, []byte("Hello"))},
		{"binary", unmaskedFrame(true, opBinary, []byte{1, 2, 3})},
		{"empty text", unmaskedFrame(true, opText, nil)},
		{"ping", unmaskedFrame(true, opPing, []byte("p"))},
		{"pong", unmaskedFrame(true, opPong, nil)},
		{"close", unmaskedFrame(true, opClose, closePayload(closeNormal, ""))},
		{"continuation after a masked fragment", unmaskedFrame(true, opCont, []byte("b"))},
		{"126-byte text", unmaskedFrame(true, opText, pattern(126))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, s, "unmasked")
			if tc.name == "continuation after a masked fragment" {
				c.send(frag(opText, "a"))
			}
			c.send(tc.frame)
			if end := c.awaitClose(); end.code != closeProtocol || len(end.extra) != 0 || (end.tcp != "EOF" && end.tcp != "reset") {
				t.Fatalf("%v (extra %v), want close 1002 and TCP closed", end, end.extra)
			}
		})
	}
}

// TestRSV1WithoutCompression: a client that offers permessage-deflate is
// not granted it, so a frame with RSV1 set is still a protocol error.
func TestRSV1WithoutCompression(t *testing.T) {
	s := startServer(t, echoConfig(0))
	c := rawDial(t, s.addr)
	c.send(upgradeRequest("/ws", s.issue(t, "rsv1"), "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
	resp, err := c.readResponse()
	if err != nil || resp.status != 101 {
		t.Fatalf("upgrade: %d %v", resp.status, err)
	}
	if ext, ok := resp.headers["sec-websocket-extensions"]; ok {
		t.Fatalf("server granted extensions %q; this test assumes none", ext)
	}
	c.readWelcome()
	// A deflated "Hello" as a compressing client would send it.
	c.send(clientFrame(true, rsv1, opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}))
	if end := c.awaitClose(); end.code != closeProtocol || (end.tcp != "EOF" && end.tcp != "reset") {
		t.Fatalf("%v, want close 1002 and TCP closed", end)
	}
}

// TestSlowConsumer: a client that stops reading while broadcasts continue is
// closed once its queue passes MaxPendingBytes; another client keeps
// receiving every message.
func TestSlowConsumer(t *testing.T) {
	const maxPending = 64 << 10
	s := startServer(t, engine.Config{MaxPendingBytes: maxPending, IdleTimeout: time.Minute, PingInterval: time.Minute})

	// The slow client asks for a tiny receive buffer so that the kernel
	// stops absorbing data early; it never reads until the end.
	d := net.Dialer{Timeout: ioWait, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	slowConn, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	slow := &wsClient{t: t, conn: slowConn, br: newReader(slowConn)}
	slow.handshake(s.issue(t, "slow"))
	fast := dialWS(t, s, "fast")

	data := []byte(`"` + strings.Repeat("x", 4096) + `"`)
	want := `{"type":"message","data":` + string(data) + `}`
	const batch = 64
	const maxBytes = 64 << 20 // give up after this much broadcast
	sent := 0
	closed := false
	for sent*len(data) < maxBytes {
		for range batch {
			if n := s.BroadcastCount(data); n < 1 {
				t.Fatalf("Broadcast targeted %d connections", n)
			}
			sent++
		}
		for i := range batch {
			m, err := fast.readMessage()
			if err != nil {
				t.Fatalf("fast client, message %d of batch: %v", i, err)
			}
			if string(m.payload) != want {
				t.Fatalf("fast client got %v", m)
			}
		}
		if s.Stats().SlowConsumers > 0 {
			closed = true
			break
		}
	}
	if !closed {
		t.Fatalf("slow consumer still open after %s broadcast", mib(uint64(sent*len(data))))
	}
	t.Logf("slow consumer closed after %d broadcasts (%s)", sent, mib(uint64(sent*len(data))))

	// The slow one is out of the hub; the fast one still gets everything.
	if n := s.PublishCount("slow", []byte(`"gone?"`)); n != 0 {
		t.Errorf("Publish to the slow user targeted %d connections after its close", n)
	}
	for i := range 10 {
		if n := s.PublishCount("fast", []byte(fmt.Sprintf("%d", i))); n != 1 {
			t.Fatalf("Publish to fast targeted %d", n)
		}
		m, err := fast.readMessage()
		if err != nil || string(m.payload) != fmt.Sprintf(`{"type":"message","channel":"#fast","offset":%d,"data":%d}`, i+1, i) {
			t.Fatalf("fast after the slow close: %v %v", m, err)
		}
	}

	// Reading now, the slow client finds the data it was sent, then either
	// a 1008 close or the end of the connection.
	var code int
	var end string
	for {
		m, err := slow.readMessage()
		if err != nil {
			end = describeEnd(err)
			break
		}
		if m.op == opClose {
			code = frame{payload: m.payload}.closeCode()
			end = slow.awaitEOF()
			break
		}
	}
	// The server may cut the queue, and so the stream, anywhere.
	if (code != 0 && code != closePolicy) || (end != "EOF" && end != "reset" && end != "EOF inside a frame") {
		t.Fatalf("slow consumer ended with close %d, tcp %s; want 1008 or none, then closed", code, end)
	}
	t.Logf("slow client saw close %d, tcp %s", code, end)
}

// TestTicketsAdmitExactlyOnce: 10,000 tickets, some tried three times at
// once, redeemed by 64 concurrent connectors: each ticket gets exactly one
// 101 and every other try a 401.
func TestTicketsAdmitExactlyOnce(t *testing.T) {
	tickets, dupEvery, workers := 10000, 5, 64
	if testing.Short() {
		tickets = 1000
	}
	s := startServer(t, engine.Config{})
	type attempt struct {
		i  int
		tk string
	}
	var groups [][]attempt
	tks := make([]string, tickets)
	for i := range tks {
		tks[i] = s.issue(t, fmt.Sprintf("user%d", i%100))
		g := []attempt{{i, tks[i]}}
		if i%dupEvery == 0 {
			g = append(g, attempt{i, tks[i]}, attempt{i, tks[i]})
		}
		groups = append(groups, g)
	}
	rand.Shuffle(len(groups), func(a, b int) { groups[a], groups[b] = groups[b], groups[a] })
	queue := make(chan attempt, 1024)
	go func() {
		// Copies of a ticket are queued back to back, so that different
		// workers take them at nearly the same moment.
		for _, g := range groups {
			for _, a := range g {
				queue <- a
			}
		}
		close(queue)
	}()

	admitted := make([]atomic.Int32, tickets)
	var statuses sync.Map // status -> *atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range queue {
				status, err := tryTicket(s.addr, a.tk)
				if err != nil {
					if failures.Add(1) <= 5 {
						t.Errorf("ticket %d: %v", a.i, err)
					}
					continue
				}
				v, _ := statuses.LoadOrStore(status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if status == 101 {
					admitted[a.i].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	var wrong []string
	for i := range admitted {
		if n := admitted[i].Load(); n != 1 && len(wrong) < 10 {
			wrong = append(wrong, fmt.Sprintf("ticket %d admitted %d times", i, n))
		}
	}
	var summary []string
	statuses.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%d×%d", v.(*atomic.Int64).Load(), k))
		return true
	})
	dups := (tickets + dupEvery - 1) / dupEvery * 2
	t.Logf("%d tickets, %d duplicate tries, %d connectors: %s", tickets, dups, workers, strings.Join(summary, " "))
	if len(wrong) > 0 {
		t.Fatalf("exactly-once broken: %s", strings.Join(wrong, "; "))
	}
	if v, ok := statuses.Load(401); !ok || v.(*atomic.Int64).Load() != int64(dups) {
		t.Errorf("want %d answers 401 (one per duplicate try), got %s", dups, strings.Join(summary, " "))
	}
	st := s.Stats()
	if st.Handshakes != uint64(tickets) || st.Rejected[engine.RejectTicket] != uint64(dups) {
		t.Errorf("Stats: %d handshakes, %d ticket rejections; want %d and %d",
			st.Handshakes, st.Rejected[engine.RejectTicket], tickets, dups)
	}
}

// tryTicket runs one upgrade with tk and returns the status. An admitted
// connection reads its welcome and closes with 1000, letting the server end
// TCP first so that this side keeps no TIME_WAIT port.
func tryTicket(addr, tk string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	c := &wsClient{conn: conn, br: newReader(conn)}
	if err := c.send(upgradeRequest("/ws", tk)); err != nil {
		return 0, err
	}
	resp, err := c.readResponse()
	if err != nil {
		return 0, err
	}
	if resp.status != 101 {
		if end := c.awaitEOF(); end != "EOF" && end != "reset" {
			return resp.status, fmt.Errorf("rejected connection: %s", end)
		}
		return resp.status, nil
	}
	f, err := c.readFrame()
	if err != nil || f.op != opText || !bytes.Contains(f.payload, []byte(`"welcome"`)) {
		return resp.status, fmt.Errorf("welcome: %v %v", f, err)
	}
	c.wroteClose = true
	c.send(closeCode(closeNormal))
	if end := c.awaitClose(); end.code != closeNormal {
		return resp.status, fmt.Errorf("close: %v", end)
	}
	return resp.status, nil
}

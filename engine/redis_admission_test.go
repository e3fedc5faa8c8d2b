package engine_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/auth/ticket"
	ticketredis "github.com/turnstile-push/turnstile/auth/ticket/redis"
	"github.com/turnstile-push/turnstile/engine"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// redisStore is one "node"'s Redis ticket store: its own client.
func redisStore(t *testing.T, addr string) *ticketredis.Store {
	t.Helper()
	c := redistest.Client(t, addr)
	sealer, err := ticket.NewSealer([]byte("engine test ticket key of 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ticketredis.New(ticketredis.Config{Shards: []rueidis.Client{c}, Sealer: sealer, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// upgradeStatus sends one upgrade with tk and returns the response status.
func upgradeStatus(addr, tk string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioWait))
	if _, err := conn.Write(upgradeRequest("/ws", tk)); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	return resp.StatusCode, nil
}

// Three engines (three nodes), one Redis: every ticket, tried at the same
// moment on the three, admits exactly one connection.
func TestRedisTicketsExactlyOnceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	n := 10000
	if testing.Short() || raceEnabled {
		n = 2000 // the same property, fewer sockets, under -race
	}
	var nodes []*testServer
	for range 3 {
		nodes = append(nodes, startServer(t, engine.Config{Store: redisStore(t, srv.Addr), HandshakeTimeout: 10 * time.Second}))
	}
	issuer := redisStore(t, srv.Addr)
	texts := make([]string, n)
	now := time.Now()
	for i := range texts {
		var err error
		if texts[i], err = issuer.IssueText(claimsFor("u"+strconv.Itoa(i)), now, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var ok, refused, other atomic.Int64
	wins := make([]atomic.Int32, n)
	const batch = 300 // 900 sockets in flight per side: well under the fd limit
	for lo := 0; lo < n; lo += batch {
		var wg sync.WaitGroup
		for i := lo; i < min(lo+batch, n); i++ {
			for _, node := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, err := upgradeStatus(node.addr, texts[i])
					switch {
					case err != nil:
						t.Errorf("ticket %d: %v", i, err)
					case status == http.StatusSwitchingProtocols:
						ok.Add(1)
						wins[i].Add(1)
					case status == http.StatusUnauthorized:
						refused.Add(1)
					default:
						other.Add(1)
					}
				}()
			}
		}
		wg.Wait()
	}
	if ok.Load() != int64(n) || refused.Load() != int64(2*n) || other.Load() != 0 {
		t.Fatalf("101: %d, 401: %d, other: %d; want %d, %d, 0", ok.Load(), refused.Load(), other.Load(), n, 2*n)
	}
	for i := range wins {
		if wins[i].Load() != 1 {
			t.Fatalf("ticket %d admitted %d times", i, wins[i].Load())
		}
	}
}

// A storm of forged tickets at a node costs Redis nothing.
func TestRedisForgedTicketsNeverReachRedis(t *testing.T) {
	srv := redistest.Start(t)
	node := startServer(t, engine.Config{Store: redisStore(t, srv.Addr)})
	good, err := redisStore(t, srv.Addr).IssueText(claimsFor("u"), time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Calls()
	for i := range 300 {
		b := []byte(good)
		b[i%len(b)] = flip(b[i%len(b)]) // every character matters: 52 characters are exactly 39 bytes
		status, err := upgradeStatus(node.addr, string(b))
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("forged ticket: %d, %v; want 401", status, err)
		}
	}
	if after := srv.Calls(); after != before {
		t.Fatalf("Redis ran %d commands during the forged storm, want 0", after-before)
	}
	if status, err := upgradeStatus(node.addr, good); err != nil || status != http.StatusSwitchingProtocols {
		t.Fatalf("the genuine ticket: %d, %v; want 101", status, err)
	}
}

// flip returns another base64url character than c.
func flip(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// Redis down: a well-formed ticket gets 503 with Retry-After, nothing is
// admitted; within 5 s of Redis returning, admission works again.
func TestRedisDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	store := redisStore(t, srv.Addr)
	node := startServer(t, engine.Config{Store: store})
	tk, err := store.IssueText(claimsFor("u"), time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	conn, err := net.Dial("tcp", node.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioWait))
	if _, err := conn.Write(upgradeRequest("/ws", tk)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %v %v; want 503 with Retry-After", resp, err)
	}
	srv.Restart()
	back := time.Now()
	for {
		tk, err := store.IssueText(claimsFor("u"), time.Now(), time.Minute)
		if err == nil {
			if status, _ := upgradeStatus(node.addr, tk); status == http.StatusSwitchingProtocols {
				break
			}
		}
		if time.Since(back) > 5*time.Second {
			t.Fatal("admission not back within 5 s of Redis returning")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A Redis that stops answering (CLIENT PAUSE): the one loop keeps serving
// other connections, and the handshakes waiting for their redeem are
// closed at their deadline, not admitted late.
func TestRedisPausedHandshakesTimeOutLoopServes(t *testing.T) {
	srv := redistest.Start(t)
	store := redisStore(t, srv.Addr)
	node := startServer(t, engine.Config{Store: store, Loops: 1, HandshakeTimeout: 500 * time.Millisecond})
	var texts []string
	for i := range 20 {
		tk, err := store.IssueText(claimsFor("u"+strconv.Itoa(i)), time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, tk)
	}
	if _, err := srv.Do("CLIENT", "PAUSE", "3000", "ALL"); err != nil {
		t.Fatal(err)
	}
	var waiting []net.Conn
	for _, tk := range texts {
		conn, err := net.Dial("tcp", node.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(upgradeRequest("/ws", tk)); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, conn)
	}
	start := time.Now()
	if status, err := upgradeStatus(node.addr, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("forged ticket while Redis is paused: %d, %v; want 401", status, err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("the loop took %v to answer another connection", d)
	}
	for i, conn := range waiting {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		if n > 0 {
			t.Fatalf("waiting handshake %d answered %q; want closed at its deadline", i, buf[:n])
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("waiting handshake %d still open 5 s later", i)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waiting handshakes closed after %v, want about their 500ms deadline", d)
	}
	if st := node.Stats(); st.Handshakes != 0 || st.Rejected[engine.RejectTimeout] != 20 {
		t.Fatalf("Handshakes %d, timeouts %d; want 0 and 20", st.Handshakes, st.Rejected[engine.RejectTimeout])
	}
}

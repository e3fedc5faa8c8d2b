package engine

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

var heapConns = flag.Int("heapconns", 2000, "TestHeapPerConn: open this many idle authenticated connections (e.g. 10000) and check the Go heap per connection")

const heapClientEnv = "TURNSTILE_ENGINE_HEAP_CLIENT"

// Budgets of TestHeapPerConn, Go heap per idle connection of the whole
// server process (engine, gnet and the embedded broker), measured at
// 850 B (10k connections) to 891 B (2k), TCP only 583 to 601 B. Where an
// authenticated connection's bytes go (heap profile, 10k connections):
// Conn 192; gnet's conn, its two net.Addrs and its connection matrix ~375
// (gnet's inbound and outbound buffers are released when empty, so an
// idle connection holds none); the personal channel ~280: the loop's
// loopChan 80 and map entry ~45, both sides of the subscription index 40,
// the node's route 24 and its xsync entry ~40, its name 16 (which is
// also the user's only copy: the user is the name without its '#'), and the
// embedded broker's count of it ~35 (no channel state: it never had a
// message). The connection id is formatted when needed, not kept.
const (
	heapBudgetAuth = 960 // bytes per authenticated idle connection
	heapBudgetTCP  = 660 // bytes per TCP connection before its upgrade
	connBudget     = 192 // unsafe.Sizeof(Conn{}) rounds up to this size class
)

// TestHeapPerConn measures the server's Go heap per idle authenticated
// connection and holds it to a budget. The clients run in a child process
// (this test binary again), so the server process holds only its own ends
// and the figure is the server's alone:
//
//	go test ./engine -run TestHeapPerConn -heapconns=10000 -v
func TestHeapPerConn(t *testing.T) {
	n := *heapConns
	if n < 1000 {
		t.Fatalf("-heapconns=%d: at least 1000, or the heap's noise decides", n)
	}
	if size := unsafe.Sizeof(Conn{}); size > connBudget {
		t.Errorf("Conn is %d bytes, budget %d (the next size class costs every connection)", size, connBudget)
	}
	// TCP only: gnet's connection plus our Conn in handshake phase and its
	// deadline entry. Authenticated: after 101, in the hub.
	raw := heapPerConn(t, n, true)
	auth := heapPerConn(t, n, false)
	t.Logf("%d idle connections, Go heap per connection: TCP only %.0f B, authenticated %.0f B; "+
		"the upgrade adds %.0f B; engine's Conn takes %d B, so gnet's own share is about %.0f B",
		n, raw, auth, auth-raw, connBudget, raw-connBudget-16)
	if raw > heapBudgetTCP {
		t.Errorf("TCP connection before upgrade: %.0f B of heap, budget %d", raw, heapBudgetTCP)
	}
	if auth > heapBudgetAuth {
		t.Errorf("idle authenticated connection: %.0f B of heap, budget %d", auth, heapBudgetAuth)
	}
}

// heapPerConn opens n connections from a child process and returns the
// server's Go heap growth per connection.
func heapPerConn(t *testing.T, n int, tcpOnly bool) float64 {
	st := newMemStore()
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = st.add(fmt.Sprintf("user-%d", i)) // one user each, as in production
	}
	s, _ := startServer(t, Config{
		Store: st, HandshakeTimeout: time.Minute, PingInterval: time.Hour, IdleTimeout: time.Hour,
	})
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHeapClient$")
	cmd.Env = append(os.Environ(), heapClientEnv+"="+s.Addr().String())
	if tcpOnly {
		cmd.Env = append(cmd.Env, heapClientEnv+"_TCP_ONLY=1")
	}
	cmd.Stdin = strings.NewReader(strings.Join(tickets, "\n") + "\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready") {
			t.Fatalf("client: %q", line)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("clients not connected in time")
	}
	if tcpOnly {
		deadline := time.Now().Add(time.Minute)
		for countPending(s) < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	} else if got := s.Stats().OpenConns; got != int64(n) {
		t.Fatalf("open connections %d, want %d", got, n)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	_ = cmd.Process.Kill() // the clients go first, so Stop need not wait for them
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Stop(ctx)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// countPending counts connections waiting for their handshake, on the loops.
func countPending(s *Server) int {
	var mu sync.Mutex
	total := 0
	s.onEveryLoop(func(l *loop) {
		n := 0
		for _, d := range l.pending[l.pendingHead:] {
			if d.c.phase == phaseHandshake {
				n++
			}
		}
		mu.Lock()
		total += n
		mu.Unlock()
	})
	return total
}

// TestHeapClient is the child side of TestHeapPerConn: it connects with
// each ticket read from stdin, says "ready", and holds the connections
// until it is killed.
func TestHeapClient(t *testing.T) {
	addr := os.Getenv(heapClientEnv)
	if addr == "" {
		t.Skip("only runs as TestHeapPerConn's child process")
	}
	var tickets []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if tk := strings.TrimSpace(sc.Text()); tk != "" {
			tickets = append(tickets, tk)
		}
	}
	conns := make([]net.Conn, len(tickets))
	var wg sync.WaitGroup
	errs := make(chan error, len(tickets))
	const workers = 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(tickets); i += workers {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				if os.Getenv(heapClientEnv+"_TCP_ONLY") != "" {
					continue
				}
				io.WriteString(c, upgradeRequest("/ws", tickets[i], ""))
				br := bufio.NewReader(c)
				resp, err := readResponseErr(br)
				if err != nil || resp != 101 {
					errs <- fmt.Errorf("conn %d: status %d, %v", i, resp, err)
					return
				}
				if _, err := tryReadFrame(br); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {} // held until the parent kills this process
}

func readResponseErr(br *bufio.Reader) (int, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	var status int
	fmt.Sscanf(line, "HTTP/1.1 %d", &status)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return status, err
		}
		if l == "\r\n" {
			return status, nil
		}
	}
}

package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/engine/broker"
)

var soak = flag.Duration("channels.soak", 2*time.Second, "how long TestRecoveryRandomized publishes (longer: go test -run Randomized -channels.soak 2m)")

// chanState is what one client knows of one channel.
type chanState struct {
	subscribed bool // a subscribed reply came on this connection
	last       uint64
	epoch      string
	known      bool // last/epoch hold a position to recover from
	lost       int  // recovered:false answers
	recovered  int  // recovered:true answers
}

type recoveryFrame struct {
	Type      string
	ID        *uint64
	Channel   string
	Offset    uint64
	Epoch     string
	Recovered *bool
	Missed    *uint64
	Data      json.RawMessage
	Code      string
	Reason    string
}

// A randomized test that fails a broker or hub that loses, duplicates or
// reorders a message: publishers on several channels, clients that
// disconnect and resubscribe with their positions at random moments, and
// resubscribe (idempotently) while subscribed. Every client's sequence per
// channel must be exactly 1, 2, 3, … after each position it held, or it
// was told recovered:false.
//
// Both ways the engine talks to a broker run: on the loop (the embedded
// broker is in-process) and off it with the answer merged back later (a
// remote broker, here the embedded one behind remoteBroker's delays, so
// that publications arrive while subscriptions wait for their position).
func TestRecoveryRandomized(t *testing.T) {
	// A long history recovers nearly always; a short one often cannot.
	for _, size := range []int{1000, 16} {
		for _, remote := range []bool{false, true} {
			name := fmt.Sprintf("history-%d/in-process", size)
			if remote {
				name = fmt.Sprintf("history-%d/remote", size)
			}
			t.Run(name, func(t *testing.T) { recoveryRandomized(t, size, remote) })
		}
	}
}

func recoveryRandomized(t *testing.T, historySize int, remote bool) {
	mem, err := broker.NewMemory(broker.MemoryConfig{HistorySize: historySize})
	if err != nil {
		t.Fatal(err)
	}
	var b broker.Broker = mem
	if remote {
		b = &remoteBroker{Broker: mem}
	}
	s, st := startServer(t, Config{Loops: 2, Broker: b})
	t.Cleanup(func() { b.Close() })
	channels := []string{"r:a", "r:b", "r:c", "r:d"}
	var stop atomic.Bool
	tops := make([]atomic.Uint64, len(channels))

	var pubs sync.WaitGroup
	for i, ch := range channels { // one publisher per channel: data n == offset
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for n := uint64(1); !stop.Load(); n++ {
				res, err := s.PublishChannel(context.Background(), ch, []byte(fmt.Sprintf(`{"n":%d}`, n)), "")
				if err != nil || res.Offset != n {
					t.Errorf("publish %s #%d: %+v %v", ch, n, res, err)
					return
				}
				tops[i].Store(n)
				if r.IntN(4) == 0 {
					time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
				}
			}
		}()
	}

	const clients = 6
	var wg sync.WaitGroup
	results := make([]map[string]*chanState, clients)
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(k), 99))
			state := map[string]*chanState{}
			for _, ch := range channels {
				state[ch] = &chanState{}
			}
			results[k] = state
			for !stop.Load() {
				if err := recoverySession(s, st, r, state, channels, -1, nil, &stop); err != nil {
					t.Errorf("client %d: %v", k, err)
					return
				}
			}
		}()
	}
	time.Sleep(*soak / 2)
	stop.Store(true)
	pubs.Wait()
	wg.Wait()
	if t.Failed() {
		return
	}
	// Publishing has stopped: one last session per client must bring every
	// channel to its top, each message once.
	final := make([]uint64, len(channels))
	for i := range tops {
		final[i] = tops[i].Load()
	}
	r := rand.New(rand.NewPCG(1, 2))
	var lost, recovered int
	for k, state := range results {
		if err := recoverySession(s, st, r, state, channels, 0, final, nil); err != nil {
			t.Fatalf("client %d, final session: %v", k, err)
		}
		for i, ch := range channels {
			if cs := state[ch]; cs.last != final[i] {
				t.Fatalf("client %d %s: at %d, top %d", k, ch, cs.last, final[i])
			}
			lost += state[ch].lost
			recovered += state[ch].recovered
		}
	}
	t.Logf("published %v; recoveries: %d recovered, %d recovered:false", final, recovered, lost)
	if recovered == 0 {
		t.Fatal("no session recovered anything: the test did not exercise recovery")
	}
	if historySize < 100 && lost == 0 {
		t.Log("no recovered:false this run (the publishers were slow)")
	}
}

// recoverySession connects, subscribes to every channel (with its position
// when known, sometimes twice), reads until a random moment (or, with
// until, until every channel reaches its top) and drops the connection.
// Once stop is set (publishing ends), a read that waits 300ms ends it.
func recoverySession(s *Server, st *memStore, r *rand.Rand, state map[string]*chanState, channels []string, budget int, until []uint64, stop *atomic.Bool) error {
	conn, err := net.DialTimeout("tcp", s.Addr().String(), testTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(conn, upgradeRequest(s.cfg.Path, st.addClaims(grants("rnd", "r:*")), "")); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "101") {
		return fmt.Errorf("upgrade: %q %v", line, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if l == "\r\n" {
			break
		}
	}
	var cmds []byte
	for i, ch := range channels {
		cs := state[ch]
		cs.subscribed = false
		cmd := fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"%s"}`, i, ch)
		if cs.known {
			cmd = fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"%s","since":{"offset":%d,"epoch":"%s"}}`, i, ch, cs.last, cs.epoch)
		}
		cmds = append(cmds, clientFrame(true, ws.OpText, []byte(cmd))...)
		if r.IntN(4) == 0 { // an idempotent repeat
			cmds = append(cmds, clientFrame(true, ws.OpText, []byte(fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"%s"}`, 100+i, ch)))...)
		}
	}
	if _, err := conn.Write(cmds); err != nil {
		return err
	}
	if budget < 0 {
		budget = r.IntN(200)
	}
	for n := 0; until != nil || n < budget; n++ {
		if until != nil {
			done := true
			for i, ch := range channels {
				if cs := state[ch]; !cs.subscribed || cs.last < until[i] {
					done = false
				}
			}
			if done {
				return nil
			}
		}
		if stop != nil && stop.Load() {
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		}
		f, err := tryReadFrame(br)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && stop != nil && stop.Load() {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		if f.op != ws.OpText {
			if f.op == ws.OpClose {
				return fmt.Errorf("closed: %q", f.payload)
			}
			continue
		}
		var m recoveryFrame
		if err := json.Unmarshal(f.payload, &m); err != nil {
			return fmt.Errorf("%q: %v", f.payload, err)
		}
		cs := state[m.Channel]
		switch m.Type {
		case "welcome":
		case "subscribed":
			if m.ID != nil && *m.ID >= 100 { // the repeat: the position so far, no recovery
				if !cs.subscribed || m.Recovered != nil {
					return fmt.Errorf("repeat answered %q before the first or with recovery", f.payload)
				}
				continue
			}
			if cs.subscribed {
				return fmt.Errorf("second subscribed for %s: %q", m.Channel, f.payload)
			}
			cs.subscribed = true
			switch {
			case !cs.known:
				if m.Recovered != nil {
					return fmt.Errorf("recovery without since: %q", f.payload)
				}
				cs.last = m.Offset
			case m.Recovered == nil:
				return fmt.Errorf("since without recovered: %q", f.payload)
			case *m.Recovered:
				if m.Epoch != cs.epoch || m.Missed == nil || *m.Missed != m.Offset-cs.last {
					return fmt.Errorf("recovered from %d %s: %q", cs.last, cs.epoch, f.payload)
				}
				cs.recovered++
			default:
				cs.lost++
				cs.last = m.Offset
			}
			cs.epoch, cs.known = m.Epoch, true
		case "message":
			if m.Channel == "#rnd" {
				continue
			}
			if !cs.subscribed {
				return fmt.Errorf("message before subscribed: %q", f.payload)
			}
			if m.Offset != cs.last+1 {
				return fmt.Errorf("%s: offset %d after %d", m.Channel, m.Offset, cs.last)
			}
			if want := fmt.Sprintf(`{"n":%d}`, m.Offset); string(m.Data) != want {
				return fmt.Errorf("%s offset %d carries %s", m.Channel, m.Offset, m.Data)
			}
			cs.last = m.Offset
		default:
			return fmt.Errorf("unexpected %q", f.payload)
		}
	}
	return nil
}

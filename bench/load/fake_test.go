package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeServer is a minimal server with turnstile's contract, in this test
// process: /auth, /ws_ticket (one-time tickets), /publish (a broadcast, or
// batches to channels with offsets and history), POST /disconnect (4001 to
// everyone), ticket admission on its own WebSocket listener, subscribe
// with since (recovery from history), and every other client message
// echoed.
type fakeServer struct {
	httpAddr, wsAddr string
	mu               sync.Mutex
	conns            map[net.Conn]*fakeConn
	history          map[string][][]byte // channel → message frames, offset i+1 at i
	issued           sync.Map
	next             atomic.Int64
	disconnects      atomic.Int64
	loseHistory      bool // answer every since with recovered:false
	// dropAgain: this many clients that resubscribe with since are closed
	// once more (4001) after their replay, as a close racing a return.
	dropAgain atomic.Int64
}

type fakeConn struct {
	wmu  sync.Mutex
	subs map[string]bool
}

func (f *fakeServer) write(c net.Conn, fc *fakeConn, op ws.OpCode, msg []byte) {
	fc.wmu.Lock()
	_ = wsutil.WriteServerMessage(c, op, msg)
	fc.wmu.Unlock()
}

// ticket issues a one-time ticket, as /ws_ticket does.
func (f *fakeServer) ticket() string {
	tk := fmt.Sprintf("good%018d", f.next.Add(1))
	f.issued.Store(tk, true)
	return tk
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{conns: map[net.Conn]*fakeConn{}, history: map[string][][]byte{}}
	wl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.wsAddr, f.httpAddr = wl.Addr().String(), hl.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"tok","expires":1}`) })
	mux.HandleFunc("/ws_ticket", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, 401)
			return
		}
		fmt.Fprintf(w, `{"ticket":%q,"expires":1,"url":"x"}`, f.ticket())
	})
	mux.HandleFunc("/disconnect", func(w http.ResponseWriter, r *http.Request) {
		f.disconnects.Add(1)
		f.mu.Lock()
		n := len(f.conns)
		for c, fc := range f.conns {
			fc.wmu.Lock()
			_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "disconnected")))
			fc.wmu.Unlock()
			c.Close()
			delete(f.conns, c)
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"disconnected":%d}`, n)
	})
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data     json.RawMessage
			Messages []struct {
				Channel string
				Data    json.RawMessage
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if body.Messages == nil { // a broadcast
			msg := append(append([]byte(`{"type":"message","data":`), body.Data...), '}')
			for c, fc := range f.conns {
				f.write(c, fc, ws.OpText, msg)
			}
			fmt.Fprintf(w, `{"recipients":%d}`, len(f.conns))
			return
		}
		for _, m := range body.Messages {
			off := len(f.history[m.Channel]) + 1
			msg := fmt.Appendf(nil, `{"type":"message","channel":%q,"offset":%d,"data":%s}`, m.Channel, off, m.Data)
			f.history[m.Channel] = append(f.history[m.Channel], msg)
			for c, fc := range f.conns {
				if fc.subs[m.Channel] {
					f.write(c, fc, ws.OpText, msg)
				}
			}
		}
		fmt.Fprint(w, `{"results":[]}`)
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	go f.serveWS(wl)
	t.Cleanup(func() {
		hs.Close()
		wl.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeServer) serveWS(l net.Listener) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		go f.serveConn(nc)
	}
}

func (f *fakeServer) serveConn(nc net.Conn) {
	defer nc.Close()
	u := ws.Upgrader{OnRequest: func(uri []byte) error {
		i := bytes.Index(uri, []byte("ticket="))
		if i < 0 {
			return ws.RejectConnectionError(ws.RejectionStatus(401))
		}
		if _, ok := f.issued.LoadAndDelete(string(uri[i+7:])); !ok {
			return ws.RejectConnectionError(ws.RejectionStatus(401))
		}
		return nil
	}}
	if _, err := u.Upgrade(nc); err != nil {
		return
	}
	fc := &fakeConn{subs: map[string]bool{}}
	f.mu.Lock()
	f.conns[nc] = fc
	f.write(nc, fc, ws.OpText, []byte(`{"type":"welcome","user":"maggie","conn":"1","channel":"#maggie","offset":0,"epoch":"e1"}`))
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, nc)
		f.mu.Unlock()
	}()
	for {
		data, op, err := wsutil.ReadClientData(nc)
		if err != nil {
			return
		}
		var cmd struct {
			Type, Channel string
			ID            int
			Since         *struct {
				Offset int
				Epoch  string
			}
		}
		if json.Unmarshal(data, &cmd) != nil || cmd.Type != "subscribe" {
			f.write(nc, fc, op, data) // echo
			continue
		}
		// Under the lock, so that no publish slips between the replay
		// and the live messages: the guarantee the storm checks.
		f.mu.Lock()
		if _, open := f.conns[nc]; !open {
			f.mu.Unlock()
			return
		}
		h := f.history[cmd.Channel]
		reply := fmt.Sprintf(`{"type":"subscribed","id":%d,"channel":%q,"offset":%d,"epoch":"e1"`, cmd.ID, cmd.Channel, len(h))
		var replay [][]byte
		if s := cmd.Since; s != nil {
			if f.loseHistory || s.Epoch != "e1" || s.Offset > len(h) {
				reply += `,"recovered":false`
			} else {
				replay = h[s.Offset:]
				reply += fmt.Sprintf(`,"recovered":true,"missed":%d`, len(replay))
			}
		}
		f.write(nc, fc, ws.OpText, []byte(reply+"}"))
		for _, m := range replay {
			f.write(nc, fc, ws.OpText, m)
		}
		fc.subs[cmd.Channel] = true
		if cmd.Since != nil && f.dropAgain.Add(-1) >= 0 {
			f.write(nc, fc, ws.OpClose, ws.NewCloseFrameBody(4001, "disconnected"))
			nc.Close()
			delete(f.conns, nc)
		}
		f.mu.Unlock()
	}
}

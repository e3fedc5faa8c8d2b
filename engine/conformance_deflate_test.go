package engine_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The compression categories (Autobahn 12 and 13): permessage-deflate
// messages of many sizes, whole and fragmented, echoed under -echo; then
// the negotiation of the extension's parameters. The echo comes back
// uncompressed (RFC 7692 lets a sender choose per message); what is
// checked is that every compressed message is inflated exactly, and that
// the bound, the reserved bits and the UTF-8 rule hold on the inflated
// message.

const offerDeflate = "permessage-deflate; client_max_window_bits"

var deflateSizes = []int{16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, conformanceMaxMessage}

// jsonish returns n bytes of text that compress as a JSON payload does.
func jsonish(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","text":"hello, %d"},`, i, i%97, i*7)
	}
	return b.Bytes()[:n]
}

// zframe is one compressed message in a single frame.
func zframe(op byte, p []byte) []byte { return clientFrame(true, rsv1, op, deflateMessage(p)) }

// zfragments is one compressed message split into frames of size
// compressed bytes, RSV1 on the first only.
func zfragments(op byte, p []byte, size int) [][]byte {
	z := deflateMessage(p)
	var out [][]byte
	for first := true; first || len(z) > 0; first = false {
		n := min(size, len(z))
		flags, o := byte(0), byte(opCont)
		if first {
			flags, o = rsv1, op
		}
		out = append(out, clientFrame(n == len(z), flags, o, z[:n]))
		z = z[n:]
	}
	return out
}

func compressionCases(m int) []wsCase {
	var cases []wsCase
	for i, n := range deflateSizes {
		p := jsonish(n)
		cases = append(cases, wsCase{
			id: fmt.Sprintf("12.1.%d", i+1), desc: fmt.Sprintf("compressed text, %d bytes", n), offer: offerDeflate,
			send: [][]byte{zframe(opText, p)}, want: []message{echoed(opText, p)},
		})
	}
	for i, n := range deflateSizes {
		p := binaryPattern(n)
		cases = append(cases, wsCase{
			id: fmt.Sprintf("12.2.%d", i+1), desc: fmt.Sprintf("compressed binary, %d bytes", n), offer: offerDeflate,
			send: [][]byte{zframe(opBinary, p)}, want: []message{echoed(opBinary, p)},
		})
	}
	for i, n := range deflateSizes {
		p := jsonish(n)
		cases = append(cases, wsCase{
			id: fmt.Sprintf("12.3.%d", i+1), desc: fmt.Sprintf("compressed text, %d bytes, in fragments of 64 compressed bytes", n),
			offer: offerDeflate, send: [][]byte{bytes.Join(zfragments(opText, p, 64), nil)}, want: []message{echoed(opText, p)},
		})
	}
	a, b := jsonish(3000), []byte("plain between compressed")
	pingBetween := zfragments(opText, a, 100)
	pingBetween = append(pingBetween[:1:1], append([][]byte{pingFrame([]byte("p"))}, pingBetween[1:]...)...)
	cases = append(cases,
		wsCase{id: "12.4.1", desc: "compressed, plain, compressed messages in one write", offer: offerDeflate,
			send: [][]byte{bytes.Join([][]byte{zframe(opText, a), textFrame(string(b)), zframe(opBinary, a)}, nil)},
			want: []message{echoed(opText, a), echoed(opText, b), echoed(opBinary, a)}},
		wsCase{id: "12.4.2", desc: "compressed fragmented text with a ping after the first fragment", offer: offerDeflate,
			send: [][]byte{bytes.Join(pingBetween, nil)}, want: []message{pong([]byte("p")), echoed(opText, a)}},
		wsCase{id: "12.4.3", desc: "compressed empty message", offer: offerDeflate,
			send: [][]byte{zframe(opText, nil)}, want: []message{echoed(opText, []byte{})}},
		wsCase{id: "12.4.4", desc: "compressed text of exactly max bytes in 1000-byte compressed fragments", offer: offerDeflate,
			send: [][]byte{bytes.Join(zfragments(opText, jsonish(m), 1000), nil)}, want: []message{echoed(opText, jsonish(m))}},
		wsCase{id: "12.4.5", desc: "compressed text, 4 KiB, written in chops of 7", offer: offerDeflate,
			send: [][]byte{zframe(opText, jsonish(4096))}, want: []message{echoed(opText, jsonish(4096))}, chop: 7},
		wsCase{id: "12.5.1", desc: "bomb: max+1 zero bytes compressed to a few hundred: 1009", offer: offerDeflate,
			send: [][]byte{zframe(opBinary, make([]byte, m+1))}, close: closeTooBig},
		wsCase{id: "12.5.2", desc: "bomb: 8 MiB of zeros in compressed fragments: 1009", offer: offerDeflate,
			send: [][]byte{bytes.Join(zfragments(opBinary, make([]byte, 8<<20), 4096), nil)}, close: closeTooBig},
		wsCase{id: "12.5.3", desc: "compressed text with invalid UTF-8: 1007", offer: offerDeflate,
			send: [][]byte{textFrame("ok"), zframe(opText, []byte("bad \xc3\x28 text"))},
			want: []message{echoText("ok")}, close: closeInvalidData},
		wsCase{id: "12.5.4", desc: "RSV1 on a ping: 1002", offer: offerDeflate,
			send: [][]byte{clientFrame(true, rsv1, opPing, []byte("x"))}, close: closeProtocol},
		wsCase{id: "12.5.5", desc: "RSV1 on a continuation: 1002", offer: offerDeflate,
			send: [][]byte{clientFrame(false, rsv1, opText, deflateMessage([]byte("ab"))), clientFrame(true, rsv1, opCont, nil)}, close: closeProtocol},
		wsCase{id: "12.5.6", desc: "RSV1|RSV2 on text: 1002", offer: offerDeflate,
			send: [][]byte{clientFrame(true, rsv1|rsv2, opText, deflateMessage([]byte("ab")))}, close: closeProtocol},
		wsCase{id: "12.5.7", desc: "RSV1 with data that is not deflate: 1002", offer: offerDeflate,
			send: [][]byte{clientFrame(true, rsv1, opText, []byte{0xff, 0xff, 0xff, 0xff, 0xff})}, close: closeProtocol},
		wsCase{id: "12.5.8", desc: "RSV1 on close: 1002", offer: offerDeflate,
			send: [][]byte{clientFrame(true, rsv1, opClose, closePayload(closeNormal, ""))}, close: closeProtocol},
		wsCase{id: "12.5.9", desc: "RSV1 without an offer on a compressing server: 1002",
			send: [][]byte{zframe(opText, []byte("Hello"))}, close: closeProtocol},
	)
	return cases
}

// negotiationCases: which offers are granted (always answered with both
// no_context_takeover parameters), and which are declined without failing
// the upgrade, after which RSV1 is a protocol error.
func negotiationCases() []wsCase {
	p := jsonish(2000)
	granted := func(id, offer string) wsCase {
		return wsCase{id: id, desc: "granted: " + offer, offer: offer,
			send: [][]byte{zframe(opText, p)}, want: []message{echoed(opText, p)}}
	}
	declined := func(id, offer string) wsCase {
		return wsCase{id: id, desc: "declined: " + offer, offer: offer, declined: true,
			send: [][]byte{textFrame("plain"), zframe(opText, p)}, want: []message{echoText("plain")}, close: closeProtocol}
	}
	return []wsCase{
		granted("13.1.1", "permessage-deflate"),
		granted("13.1.2", "permessage-deflate; client_max_window_bits"),
		granted("13.1.3", "permessage-deflate; client_no_context_takeover"),
		granted("13.1.4", "permessage-deflate; server_no_context_takeover"),
		granted("13.1.5", "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=15"),
		granted("13.1.6", "permessage-deflate; client_max_window_bits=9"),
		granted("13.1.7", "permessage-deflate; server_max_window_bits=15"),
		granted("13.1.8", "permessage-deflate; server_max_window_bits=10, permessage-deflate"),
		granted("13.1.9", "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"),
		declined("13.2.1", "permessage-deflate; server_max_window_bits=10"),
		declined("13.2.2", "permessage-deflate; client_max_window_bits=16"),
		declined("13.2.3", "permessage-deflate; server_no_context_takeover=1"),
		declined("13.2.4", "permessage-deflate; unknown_parameter"),
		declined("13.2.5", "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
		declined("13.2.6", "x-webkit-deflate-frame"),
	}
}

func compressionServer(t *testing.T) *testServer {
	cfg := echoConfig(conformanceMaxMessage)
	cfg.Compression = true
	return startServer(t, cfg)
}

func TestConformanceCompression(t *testing.T) {
	s := compressionServer(t)
	for _, c := range []struct {
		name  string
		cases []wsCase
	}{
		{"12 compression", compressionCases(conformanceMaxMessage)},
		{"13 compression parameters", negotiationCases()},
	} {
		t.Run(strings.Fields(c.name)[0], func(t *testing.T) {
			runCategory(t, s, c.name, c.cases, 0)
		})
	}
}

// TestConformanceCompressionOff: with compression off every offer is
// declined, and the upgrade still succeeds.
func TestConformanceCompressionOff(t *testing.T) {
	s := conformanceServer(t)
	var cases []wsCase
	for _, c := range negotiationCases() {
		if !c.declined {
			c.declined, c.want, c.close = true, []message{echoText("plain")}, closeProtocol
			c.desc = "compression off, " + c.desc
			c.send = [][]byte{textFrame("plain"), zframe(opText, jsonish(100))}
			cases = append(cases, c)
		}
	}
	runCategory(t, s, "13 compression off", cases, 0)
}

// TestCompressedPush: a broadcast and a user publish reach a compressing
// client compressed (RSV1) and a plain client plain, with the same text;
// a payload under CompressionMinBytes goes plain to both.
func TestCompressedPush(t *testing.T) {
	cfg := echoConfig(conformanceMaxMessage)
	cfg.Echo, cfg.Compression = false, true
	s := startServer(t, cfg)
	zc, pc := rawDial(t, s.addr), rawDial(t, s.addr)
	if _, ext := zc.handshakeOffer(s.issue(t, "zip"), offerDeflate); !zc.deflate {
		t.Fatalf("compression not granted: %q", ext)
	}
	pc.handshake(s.issue(t, "zip"))
	if st := s.Stats(); st.DeflateConns != 1 || st.OpenConns != 2 {
		t.Errorf("Stats: %d compressing of %d open, want 1 of 2", st.DeflateConns, st.OpenConns)
	}
	big := []byte(`{"note":"` + strings.Repeat("compress me ", 100) + `"}`)
	expect := func(c *wsClient, what string, deflated bool, data []byte) {
		t.Helper()
		m, err := c.readMessage()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if m.deflated != deflated || !bytes.Contains(m.payload, data) || !bytes.HasPrefix(m.payload, []byte(`{"type":"message"`)) {
			t.Fatalf("%s: deflated=%v %q, want deflated=%v with %q", what, m.deflated, m.payload, deflated, data)
		}
	}
	for _, tc := range []struct {
		what string
		data []byte
		big  bool
	}{{"broadcast", big, true}, {"small broadcast", []byte(`{"n":1}`), false}} {
		if n := s.BroadcastCount(tc.data); n != 2 {
			t.Fatalf("%s reached %d, want 2", tc.what, n)
		}
		expect(zc, tc.what, tc.big, tc.data)
		expect(pc, tc.what, false, tc.data)
	}
	if n := s.PublishCount("zip", big); n != 2 {
		t.Fatalf("user publish reached %d, want 2", n)
	}
	expect(zc, "user publish", true, big)
	expect(pc, "user publish", false, big)
	zc.closeNormally(closeNormal)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().DeflateConns != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Stats().DeflateConns; n != 0 {
		t.Errorf("after the compressing client closed, Stats.DeflateConns = %d", n)
	}
}

// TestDeflateWithProtocol: the 101 answers the subprotocol and the
// extension together; a malformed extension header is declined, not
// refused.
func TestDeflateWithProtocol(t *testing.T) {
	s := compressionServer(t)
	for _, tc := range []struct {
		offer, wantExt string
	}{
		{offerDeflate, deflateGranted},
		{`permessage-deflate; client_max_window_bits="`, ""},
	} {
		c := rawDial(t, s.addr)
		c.send(upgradeRequest("/ws", s.issue(t, "proto"), "Sec-WebSocket-Protocol: turnstile.v1", "Sec-WebSocket-Extensions: "+tc.offer))
		resp, err := c.readResponse()
		if err != nil || resp.status != 101 {
			t.Fatalf("offer %q: status %d %v", tc.offer, resp.status, err)
		}
		if got := resp.headers["sec-websocket-protocol"]; got != "turnstile.v1" {
			t.Errorf("offer %q: Sec-WebSocket-Protocol %q, want turnstile.v1", tc.offer, got)
		}
		if got := strings.ReplaceAll(resp.headers["sec-websocket-extensions"], " ", ""); got != tc.wantExt {
			t.Errorf("offer %q: Sec-WebSocket-Extensions %q, want %q", tc.offer, got, tc.wantExt)
		}
	}
}

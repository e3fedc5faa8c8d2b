package engine_test

// A raw TCP WebSocket client for black-box tests: it writes exactly the
// bytes a case asks for (bad frames included), optionally one byte per
// write, and reads the server's frames one by one. It is deliberately
// independent of gobwas/ws so that a bug shared by the engine and the
// library cannot hide.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine"
)

// Opcodes and close codes, spelled out here rather than imported so that the
// tests state the wire protocol themselves.
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA

	rsv1 byte = 0x40
	rsv2 byte = 0x20
	rsv3 byte = 0x10

	closeNormal      = 1000
	closeGoingAway   = 1001
	closeProtocol    = 1002
	closeNoStatus    = 1005 // no code in the close frame (never on the wire)
	closeInvalidData = 1007
	closePolicy      = 1008
	closeTooBig      = 1009
)

// ioWait bounds every wait of the client: generous, for a loaded 2-core
// machine under -race.
const ioWait = 10 * time.Second

// claimsFor returns the claims of a ticket for user.
func claimsFor(user string) ticket.Claims { return ticket.Claims{Subject: user} }

// issueTicket returns the text form of a fresh ticket for user.
func issueTicket(t testing.TB, store ticket.Store, user string) string {
	t.Helper()
	tk, err := store.Issue(claimsFor(user), time.Now(), time.Minute)
	if err != nil {
		t.Fatalf("issue ticket: %v", err)
	}
	return tk.String()
}

// ---------------------------------------------------------------------------
// Server under test
// ---------------------------------------------------------------------------

type testServer struct {
	*engine.Server
	store *ticket.Map
	addr  string
}

// issue returns a fresh ticket for user.
func (s *testServer) issue(t testing.TB, user string) string {
	t.Helper()
	return issueTicket(t, s.store, user)
}

// startServer starts an engine on a free loopback port with cfg (Addr and
// Store are filled in) and stops it when the test ends.
func startServer(t testing.TB, cfg engine.Config) *testServer {
	t.Helper()
	store := ticket.NewMap(ticket.MapConfig{Capacity: 1 << 15})
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Store == nil {
		cfg.Store = store
	}
	s, err := engine.New(cfg)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Logf("Stop: %v", err)
		}
	})
	return &testServer{Server: s, store: store, addr: s.Addr().String()}
}

// echoConfig is the configuration of the conformance runs: echo on, and
// timers far away so that no server ping interleaves with a case.
func echoConfig(maxMessage int) engine.Config {
	return engine.Config{
		Echo:             true,
		MaxMessageBytes:  maxMessage,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      time.Minute,
		PingInterval:     time.Minute,
		MaxPendingBytes:  16 << 20,
	}
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

type wsClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	// chop, when > 0, writes every send in pieces of at most chop bytes,
	// one write (and one TCP segment, NODELAY) per piece.
	chop int
	// wroteClose records that the client sent a close frame.
	wroteClose bool
	// deflate: the server granted permessage-deflate, so its data
	// messages may arrive compressed (RSV1 on the first frame).
	deflate bool
}

// rawDial opens a TCP connection to addr and returns a client that has sent
// nothing yet.
func rawDial(t testing.TB, addr string) *wsClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn, br: newReader(conn)}
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReaderSize(conn, 64<<10) }

// upgradeRequest returns a valid upgrade request for path?ticket=tk with
// the extra header lines (each "Name: value") appended.
func upgradeRequest(path, tk string, extra ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s?ticket=%s HTTP/1.1\r\n", path, tk)
	b.WriteString("Host: 127.0.0.1\r\n")
	b.WriteString("Upgrade: websocket\r\n")
	b.WriteString("Connection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	b.WriteString("Sec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// httpResponse is the head of the server's answer to an upgrade request.
type httpResponse struct {
	status  int
	headers map[string]string // canonical lower-case names
	raw     string
	body    []byte // Content-Length bytes after the head
}

// readResponse reads an HTTP response head (up to the blank line).
func (c *wsClient) readResponse() (httpResponse, error) {
	c.conn.SetReadDeadline(time.Now().Add(ioWait))
	var r httpResponse
	r.headers = make(map[string]string)
	line, err := c.br.ReadString('\n')
	if err != nil {
		return r, fmt.Errorf("status line: %w", err)
	}
	r.raw = line
	var proto string
	if _, err := fmt.Sscanf(line, "%s %d", &proto, &r.status); err != nil {
		return r, fmt.Errorf("status line %q: %w", line, err)
	}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return r, fmt.Errorf("headers: %w", err)
		}
		r.raw += line
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return r, c.readBody(&r)
		}
		if name, value, ok := strings.Cut(line, ":"); ok {
			r.headers[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
		}
	}
}

// readBody reads the body that Content-Length announces (rejections carry
// a short text body).
func (c *wsClient) readBody(r *httpResponse) error {
	cl, ok := r.headers["content-length"]
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(cl)
	if err != nil || n < 0 || n > 1<<20 {
		return fmt.Errorf("Content-Length %q", cl)
	}
	r.body = make([]byte, n)
	if _, err := io.ReadFull(c.br, r.body); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// handshake sends a valid upgrade request (plus pipelined bytes, in the same
// write), expects 101 and the welcome frame, and returns the welcome.
func (c *wsClient) handshake(tk string, pipelined ...[]byte) welcome {
	c.t.Helper()
	w, _ := c.handshakeOffer(tk, "", pipelined...)
	return w
}

// handshakeOffer is handshake with a Sec-WebSocket-Extensions offer (none
// if empty); it returns the server's Sec-WebSocket-Extensions answer too
// and notes whether permessage-deflate was granted.
func (c *wsClient) handshakeOffer(tk, offer string, pipelined ...[]byte) (welcome, string) {
	c.t.Helper()
	var extra []string
	if offer != "" {
		extra = append(extra, "Sec-WebSocket-Extensions: "+offer)
	}
	req := upgradeRequest("/ws", tk, extra...)
	for _, p := range pipelined {
		req = append(req, p...)
	}
	c.send(req)
	resp, err := c.readResponse()
	if err != nil {
		c.t.Fatalf("upgrade: %v", err)
	}
	if resp.status != 101 {
		c.t.Fatalf("upgrade: status %d, want 101:\n%s", resp.status, resp.raw)
	}
	if got, want := resp.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		c.t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	ext := resp.headers["sec-websocket-extensions"]
	c.deflate = strings.HasPrefix(ext, "permessage-deflate")
	return c.readWelcome(), ext
}

type welcome struct {
	Type string `json:"type"`
	User string `json:"user"`
	Conn string `json:"conn"`
}

func (c *wsClient) readWelcome() welcome {
	c.t.Helper()
	f, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("welcome: %v", err)
	}
	if f.op != opText || !f.fin {
		c.t.Fatalf("welcome: got %v, want one text frame", f)
	}
	var w welcome
	if err := json.Unmarshal(f.payload, &w); err != nil || w.Type != "welcome" {
		c.t.Fatalf("welcome: %q (%v)", f.payload, err)
	}
	return w
}

// dialWS connects to the server and completes the handshake for user.
func dialWS(t testing.TB, s *testServer, user string) *wsClient {
	t.Helper()
	c := rawDial(t, s.addr)
	c.handshake(s.issue(t, user))
	return c
}

// send writes b, in pieces of c.chop bytes when chop is set. Write errors
// are returned, not fatal: a server that closes early makes them normal.
func (c *wsClient) send(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if c.chop <= 0 {
		_, err := c.conn.Write(b)
		return err
	}
	for len(b) > 0 {
		n := min(c.chop, len(b))
		if _, err := c.conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

// clientFrame encodes one client frame: masked with a random key.
// flags holds RSV bits (rsv1|rsv2|rsv3); fin is separate for clarity.
func clientFrame(fin bool, flags, op byte, payload []byte) []byte {
	var key [4]byte
	rand.Read(key[:])
	return encodeFrame(fin, flags, op, payload, key[:])
}

// unmaskedFrame encodes a frame without a mask, which a server must refuse.
func unmaskedFrame(fin bool, op byte, payload []byte) []byte {
	return encodeFrame(fin, 0, op, payload, nil)
}

func encodeFrame(fin bool, flags, op byte, payload, key []byte) []byte {
	b0 := flags | op&0x0F
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var b1 byte
	if key != nil {
		b1 = 0x80
	}
	out = appendLength(out, b1, uint64(len(payload)))
	out = append(out, key...)
	start := len(out)
	out = append(out, payload...)
	if key != nil {
		for i := range payload {
			out[start+i] ^= key[i%4]
		}
	}
	return out
}

func appendLength(out []byte, b1 byte, n uint64) []byte {
	switch {
	case n <= 125:
		return append(out, b1|byte(n))
	case n <= 0xFFFF:
		out = append(out, b1|126)
		return binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, b1|127)
		return binary.BigEndian.AppendUint64(out, n)
	}
}

// frameHeader encodes only a masked frame's header declaring length n: the
// payload is never sent. It tests decisions taken from the declared length.
func frameHeader(fin bool, op byte, n uint64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := appendLength([]byte{b0}, 0x80, n)
	return append(out, 1, 2, 3, 4)
}

// Shorthands for whole, masked frames.
func textFrame(s string) []byte     { return clientFrame(true, 0, opText, []byte(s)) }
func binFrame(b []byte) []byte      { return clientFrame(true, 0, opBinary, b) }
func pingFrame(b []byte) []byte     { return clientFrame(true, 0, opPing, b) }
func pongFrame(b []byte) []byte     { return clientFrame(true, 0, opPong, b) }
func closeFrame(p []byte) []byte    { return clientFrame(true, 0, opClose, p) }
func closeCode(code int) []byte     { return closeFrame(closePayload(code, "")) }
func frag(op byte, s string) []byte { return clientFrame(false, 0, op, []byte(s)) }
func cont(fin bool, s string) []byte {
	return clientFrame(fin, 0, opCont, []byte(s))
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// frame is one frame received from the server.
type frame struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	payload []byte
}

func (f frame) String() string {
	p := f.payload
	suffix := ""
	if len(p) > 40 {
		p, suffix = p[:40], fmt.Sprintf("…(%d bytes)", len(f.payload))
	}
	return fmt.Sprintf("{fin=%v rsv=%#x op=%#x masked=%v %q%s}", f.fin, f.rsv, f.op, f.masked, p, suffix)
}

// closeCode returns the code of a close frame (closeNoStatus if it has none).
func (f frame) closeCode() int {
	if len(f.payload) < 2 {
		return closeNoStatus
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

var errFrameTooLarge = errors.New("server frame larger than the test allows")

// readFrame reads one server frame within ioWait.
func (c *wsClient) readFrame() (frame, error) {
	return c.readFrameWithin(ioWait)
}

func (c *wsClient) readFrameWithin(d time.Duration) (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var f frame
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return f, err
	}
	f.fin = h[0]&0x80 != 0
	f.rsv = h[0] & 0x70
	f.op = h[0] & 0x0F
	f.masked = h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(c.br, key[:]); err != nil {
			return f, err
		}
	}
	if n > 64<<20 {
		return f, errFrameTooLarge
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

// message is one data message (reassembled) or one control frame received
// from the server: what a case compares against.
type message struct {
	op      byte
	payload []byte // inflated if the server sent it compressed
	// deflated: the server sent it compressed (cases compare op and
	// payload only; tests of the compressed path look at this).
	deflated bool
}

func (m message) String() string {
	p := m.payload
	suffix := ""
	if len(p) > 40 {
		p, suffix = p[:40], fmt.Sprintf("…(%d bytes)", len(m.payload))
	}
	return fmt.Sprintf("{op=%#x %q%s}", m.op, p, suffix)
}

// readMessage reads the next data message, reassembling fragments, or the
// next control frame (also one that arrives between fragments, in which
// case the fragments read so far are lost: the tests never expect that).
// It also checks the server's framing: never masked, no RSV bits, control
// frames whole and short, continuations only inside a message.
func (c *wsClient) readMessage() (message, error) {
	var m message
	inMessage := false
	for {
		f, err := c.readFrame()
		if err != nil {
			return m, err
		}
		compressed := c.deflate && f.rsv == 0x40 && f.op != opCont && f.op < opClose
		if f.masked || (f.rsv != 0 && !compressed) {
			return m, fmt.Errorf("server frame masked or with RSV bits: %v", f)
		}
		m.deflated = m.deflated || compressed
		if f.op >= opClose {
			if !f.fin || len(f.payload) > 125 {
				return m, fmt.Errorf("server control frame fragmented or too long: %v", f)
			}
			return message{op: f.op, payload: f.payload}, nil
		}
		switch {
		case f.op == opCont && !inMessage:
			return m, fmt.Errorf("server continuation outside a message: %v", f)
		case f.op != opCont && inMessage:
			return m, fmt.Errorf("server started a message inside another: %v", f)
		case f.op != opCont:
			m.op = f.op
			inMessage = true
		}
		m.payload = append(m.payload, f.payload...)
		if f.fin {
			if m.deflated {
				return inflateMessage(m)
			}
			return m, nil
		}
	}
}

// closeResult is how a connection ended, as seen by the client.
type closeResult struct {
	code   int    // close code from the server's close frame; 0 if none
	reason string // its reason
	tcp    string // "EOF" (clean), "reset", or the error that ended the wait
	extra  []message
}

func (r closeResult) String() string {
	return fmt.Sprintf("close %d %q, tcp %s", r.code, r.reason, r.tcp)
}

// awaitClose reads until the server's close frame and then until the TCP
// connection ends, replying to the close as a client must. Data messages
// and control frames seen before the close are kept in extra.
func (c *wsClient) awaitClose() closeResult {
	var r closeResult
	for {
		m, err := c.readMessage()
		if err != nil {
			r.tcp = describeEnd(err)
			return r
		}
		if m.op == opClose {
			r.code = frame{payload: m.payload}.closeCode()
			if len(m.payload) > 2 {
				r.reason = string(m.payload[2:])
			}
			break
		}
		r.extra = append(r.extra, m)
	}
	// The server has closed the WebSocket. A server that fails the
	// connection ends TCP at once: wait a moment for that first, since a
	// reply written into a closed socket would turn its FIN into a reset.
	// Otherwise answer once, as RFC 6455 5.5.1 asks (unless we started the
	// close), and the server must then end TCP.
	if !c.wroteClose {
		c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.br.Peek(1); err != nil && !isTimeout(err) {
			r.tcp = describeEnd(err)
			return r
		}
		c.send(closeFrame(closePayload(r.code, "")))
		c.wroteClose = true
	}
	r.tcp = c.awaitEOF()
	return r
}

// awaitEOF waits for the server to end the TCP connection, discarding any
// bytes (a conforming server sends none after its close frame; the caller
// is told if it did).
func (c *wsClient) awaitEOF() string {
	c.conn.SetReadDeadline(time.Now().Add(ioWait))
	n, err := io.Copy(io.Discard, c.br)
	end := describeEnd(err)
	if err == nil {
		end = "EOF"
	}
	if n > 0 {
		end += fmt.Sprintf(" after %d stray bytes", n)
	}
	return end
}

func describeEnd(err error) string {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF inside a frame"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case isTimeout(err):
		return "timeout"
	default:
		return err.Error()
	}
}

// closeNormally runs a client-initiated close handshake with code and
// returns how it ended.
func (c *wsClient) closeNormally(code int) closeResult {
	c.wroteClose = true
	c.send(closeCode(code))
	return c.awaitClose()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// deflateMessage compresses p as a permessage-deflate client without
// context takeover does: one raw deflate stream, sync-flushed, with the
// trailing 00 00 ff ff removed (RFC 7692 7.2.1).
func deflateMessage(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateMessage inflates a compressed server message.
func inflateMessage(m message) (message, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(m.payload),
		bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	p, err := io.ReadAll(r)
	if err != nil {
		return m, fmt.Errorf("inflating a server message: %w", err)
	}
	m.payload = p
	return m, nil
}

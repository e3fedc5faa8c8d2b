package engine

import (
	"strconv"
	"strings"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

// connPhase is where a connection is in its life.
type connPhase uint8

const (
	phaseHandshake connPhase = iota // waiting for the upgrade request
	phaseWelcome                    // upgraded, waiting for the personal channel's position
	phaseOpen                       // upgraded, welcomed, in the hub
	phaseClosing                    // we sent a close and wait for the client's
	phaseClosed                     // OnClose ran: never touch gc again
)

// Conn is one WebSocket connection. It lives in its gnet connection's
// context and is only ever touched on that connection's event loop.
type Conn struct {
	gc   gnet.Conn
	loop *loop
	// personal is the connection's personal channel, "#<user>"; the user
	// is personal[1:], so one copy of the name serves both.
	personal string
	// seq numbers the connection on its loop; its id, "<node>.<loop>.<seq>"
	// in base36, is formatted when asked for (appendID), not kept.
	seq uint64

	// Reassembly of a fragmented message: fragOp is 0 when none is in
	// flight; frag is allocated only while one is (most connections never
	// send one). The one-byte fields sit together so that Conn takes 192
	// bytes (a size class), not 208.
	fragOp ws.OpCode
	phase  connPhase
	// deflate: the upgrade negotiated permessage-deflate (deflate.go);
	// fragDeflate: the message being reassembled is compressed.
	deflate     bool
	fragDeflate bool
	// closeReason is why the connection is ending, set when the server
	// sends its close or answers the client's; zero: connection lost.
	closeReason  CloseReason
	resumeQueued bool // waits in loop.resume for another turn
	// redeeming: the handshake waits for an asynchronous ticket redeem.
	redeeming bool
	frag      *fragment
	utf8      utf8Validator
	// utf8Seen is how much of the current frame's text payload was
	// validated while the frame was incomplete (utf8partial.go).
	utf8Seen int64

	lastRead int64 // server clock (ns) of the last bytes from the client
	lastPing int64 // server clock (ns) of the last ping we sent
	expires  int64 // server clock (ns) when the session ends; 0: never

	subs      []connSub // its subscriptions; the personal channel's among them
	grants    []string  // the ticket's channels claim
	origin    string    // the upgrade's Origin, which a refresh ticket must match
	index     int32     // position in loop.conns (int32: see fragOp)
	cmdTokens int32     // command rate limit: tokens left
	cmdLast   int64     // server clock (ns) the tokens were counted at
}

// fragment is a fragmented message being reassembled: its bytes so far.
type fragment struct{ buf []byte }

// fragLen is how many bytes of a fragmented message have arrived; 0 when
// none is in flight.
func (c *Conn) fragLen() int {
	if c.frag == nil {
		return 0
	}
	return len(c.frag.buf)
}

// User is the authenticated user (the ticket's subject). Safe from any
// goroutine: it never changes after the upgrade.
func (c *Conn) User() string {
	if c.personal == "" {
		return "" // not upgraded
	}
	return c.personal[1:]
}

// ID is the connection's opaque, unique id, as sent in the welcome. Safe
// from any goroutine: it never changes after the upgrade.
func (c *Conn) ID() string { return string(c.appendID(nil)) }

// appendID appends the connection's id: unique among nodes, so that
// /disconnect {"conn"} sent to every node closes one connection.
func (c *Conn) appendID(dst []byte) []byte {
	dst = append(dst, c.loop.srv.nodeID...)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(c.loop.index), 36)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, c.seq, 36)
}

// parseConnID splits an id made by appendID on this node into its loop
// index and sequence number; ok is false for any other text.
func (s *Server) parseConnID(id string) (loop int, seq uint64, ok bool) {
	rest, ok := strings.CutPrefix(id, s.nodeID+".")
	if !ok {
		return 0, 0, false
	}
	loopPart, seqPart, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	li, err1 := strconv.ParseUint(loopPart, 36, 31)
	seq, err2 := strconv.ParseUint(seqPart, 36, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int(li), seq, true
}

package engine

import (
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
	user string
	id   string

	// Reassembly of a fragmented message: fragOp is 0 when none is in
	// flight; fragBuf (its length is the message's so far) is allocated
	// only while one is. The one-byte fields sit together so that Conn
	// takes 208 bytes (a size class), not 224.
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
	fragBuf   []byte
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

// User is the authenticated user (the ticket's subject). Safe from any
// goroutine: it never changes after the upgrade.
func (c *Conn) User() string { return c.user }

// ID is the connection's opaque, unique id, as sent in the welcome. Safe
// from any goroutine: it never changes after the upgrade.
func (c *Conn) ID() string { return c.id }

package engine

import (
	"bytes"

	"github.com/gobwas/ws"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// The subprotocols of DESIGN 1.7: a browser cannot set headers on a
// WebSocket, but it can offer subprotocols, so the ticket may travel as one
// beside the protocol the server speaks.
const (
	// ProtocolV1 is the one subprotocol the server speaks; it is answered
	// whenever the client offers it.
	ProtocolV1 = "turnstile.v1"
	// ProtocolTicketPrefix prefixes a ticket offered as a subprotocol:
	// "turnstile.ticket.<ticket>".
	ProtocolTicketPrefix = "turnstile.ticket."
)

var (
	// errRejectProtocol is a ticket protocol offered without turnstile.v1:
	// 400, like any malformed request (rejectionFor's default).
	errRejectProtocol = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("protocol"))

	protocolV1     = []byte(ProtocolV1)
	protocolTicket = []byte(ProtocolTicketPrefix)
	// protocolV1Header is built once: returning it from OnBeforeUpgrade
	// must not allocate.
	protocolV1Header ws.HandshakeHeader = ws.HandshakeHeaderString("Sec-WebSocket-Protocol: " + ProtocolV1 + "\r\n")
)

// binding is what a handshake learns from its headers to bind a ticket to
// where it is presented: the Origin and the offered subprotocols. It lives
// in the loop's handshake scratch and never allocates once origin has grown
// to the longest Origin the loop has seen.
type binding struct {
	origin      []byte // the last Origin header's value
	originSeen  bool
	queryTicket bool // the URI had a ticket= parameter, well-formed or not
	protoTicket bool // a turnstile.ticket.* subprotocol was offered
	protoV1     bool // turnstile.v1 was offered
}

func (b *binding) reset() {
	b.origin = b.origin[:0]
	b.originSeen, b.queryTicket, b.protoTicket, b.protoV1 = false, false, false, false
}

// setOrigin keeps a copy of the Origin value: gobwas's buffer is reused
// before OnBeforeUpgrade runs.
func (b *binding) setOrigin(v []byte) {
	b.origin = append(b.origin[:0], v...)
	b.originSeen = true
}

// originMatches says whether a ticket issued to bound (its Claims.Origin;
// "" for a request without Origin) may be used from this handshake's
// Origin. A ticket issued to a browser page admits only that page's Origin;
// one issued without Origin (a native client, or a backend fetching it for
// the page) is not bound.
func (b *binding) originMatches(bound string) bool {
	return bound == "" || (b.originSeen && string(b.origin) == bound)
}

// protocolHeader is the Sec-WebSocket-Protocol answer for a 101, or nil
// when the client offered no protocol we speak.
func (b *binding) protocolHeader() ws.HandshakeHeader {
	if b.protoV1 {
		return protocolV1Header
	}
	return nil
}

// offeredProtocols is the Upgrader's ProtocolCustom: it reads every
// Sec-WebSocket-Protocol header (it never selects one itself, so gobwas
// keeps calling it), notes turnstile.v1 and takes a turnstile.ticket.*
// into the scratch ticket as OnRequest does with the query's. It answers
// false (400, ticket unspent) for a request that is ambiguous: two tickets
// (query and protocol, or two protocols), or a ticket protocol without
// turnstile.v1 (a browser would fail a 101 that names no protocol it
// offered). The offered list is never kept or logged.
func (l *loop) offeredProtocols(v []byte) (string, bool) {
	for len(v) > 0 {
		var p []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			p, v = v[:i], v[i+1:]
		} else {
			p, v = v, nil
		}
		p = bytes.Trim(p, " \t")
		switch {
		case bytes.Equal(p, protocolV1):
			l.hs.protoV1 = true
		case bytes.HasPrefix(p, protocolTicket):
			if l.hs.queryTicket || l.hs.protoTicket {
				return "", false
			}
			l.hs.protoTicket = true
			if t := p[len(protocolTicket):]; len(t) >= ticket.TextLen && len(t) <= ticket.MaxTextLen && isBase64URL(t) {
				l.hs.ticketLen = copy(l.hs.ticket[:], t)
				l.hs.ticketOK = true
			}
		}
	}
	return "", true
}

// protocolsConsistent is checked once every header is read: a ticket
// protocol needs turnstile.v1 beside it.
func (b *binding) protocolsConsistent() bool {
	return !b.protoTicket || b.protoV1
}

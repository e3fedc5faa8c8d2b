package engine

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// Rejections returned by the Upgrader callbacks. They are built once: every
// one says 400 to gobwas, whose own response we never send (it would format
// other status codes with strconv, which allocates); rejectionFor maps each
// to our prebuilt response.
var (
	errRejectNotFound = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("not found"))
	errRejectOrigin   = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("origin"))
	errRejectTicket   = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("ticket"))
	errRejectCapacity = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("capacity"))
	errRejectSince    = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("since"))
	errRejectDraining = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("draining"))
	errRejectUserMax  = ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("user quota"))
)

// rejectionFor maps an Upgrade error to the reason we answer with.
func rejectionFor(err error) RejectReason {
	switch err {
	case errRejectNotFound:
		return RejectNotFound
	case errRejectOrigin:
		return RejectOrigin
	case errRejectTicket:
		return RejectTicket
	case errRejectCapacity:
		return RejectCapacity
	case errRejectDraining:
		return RejectDraining
	case errRejectUserMax:
		return RejectUserQuota
	case errRedeemPending:
		return rejectPending
	case errRejectUnavailable:
		return RejectUnavailable
	case ws.ErrHandshakeUpgradeRequired:
		return RejectVersion
	}
	return RejectBadRequest
}

// rejectResponses are the complete HTTP responses, one per reason, built once.
var rejectResponses = func() (r [NumRejectReasons][]byte) {
	build := func(status, extra, body string) []byte {
		return []byte("HTTP/1.1 " + status + "\r\n" +
			"Connection: close\r\n" + extra +
			"Content-Type: text/plain; charset=utf-8\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)+1) + "\r\n\r\n" + body + "\n")
	}
	r[RejectBadRequest] = build("400 Bad Request", "", "bad request")
	r[RejectVersion] = build("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n", "upgrade required: WebSocket version 13")
	r[RejectNotFound] = build("404 Not Found", "", "not found")
	r[RejectHeaderTooLarge] = build("431 Request Header Fields Too Large", "", "request header fields too large")
	r[RejectOrigin] = build("403 Forbidden", "", "origin not allowed")
	r[RejectTicket] = build("401 Unauthorized", "", "missing, unknown, expired or used ticket")
	r[RejectCapacity] = build("503 Service Unavailable", "Retry-After: 1\r\n", "server at capacity")
	r[RejectUserQuota] = build("429 Too Many Requests", "", "too many connections for this user: close one first")
	r[RejectDraining] = build("503 Service Unavailable", "Retry-After: 1\r\n", "server shutting down: retry on another node")
	r[RejectFDBudget] = build("503 Service Unavailable", "Retry-After: 1\r\n", "server out of connection slots")
	r[RejectUnavailable] = build("503 Service Unavailable", "Retry-After: 1\r\n", "ticket store unavailable")
	return r
}()

var (
	headerEnd   = []byte("\r\n\r\n")
	ticketParam = []byte("ticket")
	sinceParam  = []byte("since")
	originKey   = []byte("Origin")
)

// handshakeIO feeds the Upgrader exactly the header bytes and captures its
// response, so that nothing is read ahead and the response is written once.
type handshakeIO struct {
	in  []byte
	out []byte
}

func (h *handshakeIO) Read(p []byte) (int, error) {
	if len(h.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.in)
	h.in = h.in[n:]
	return n, nil
}

func (h *handshakeIO) Write(p []byte) (int, error) {
	h.out = append(h.out, p...)
	return len(p), nil
}

// handshakeScratch is the state of the one handshake a loop runs at a time.
type handshakeScratch struct {
	io        handshakeIO
	ticket    [ticket.MaxTextLen]byte
	ticketLen int  // of ticket's bytes, the URI's ticket
	ticketOK  bool // the URI held a well-formed ticket, copied to ticket
	asyncHandshake
	claims   ticket.Claims
	personal string // "#" + claims.Subject, of which Subject is the tail (the redeem hook)
	reserved bool   // holds a MaxConns slot
	since    []byte // the URI's since=<offset>:<epoch>, checked; valid until Discard
	binding         // Origin and Sec-WebSocket-Protocol, for DESIGN 1.7 (binding.go)
	deflate  bool   // permessage-deflate was accepted (deflate.go)
	ext      extScan
}

// newUpgrader builds the loop's Upgrader. Its callbacks write only this
// loop's scratch, so loops never share mutable state; that is why there is
// one Upgrader per loop rather than one per server.
func (l *loop) newUpgrader() ws.Upgrader {
	cfg := &l.srv.cfg
	anyOrigin := len(cfg.Origins) == 1 && cfg.Origins[0] == "*"
	up := ws.Upgrader{
		ReadBufferSize: cfg.MaxHeaderBytes,
		OnRequest: func(uri []byte) error {
			path, query := uri, []byte(nil)
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				path, query = uri[:i], uri[i+1:]
			}
			if string(path) != cfg.Path {
				return errRejectNotFound
			}
			// A missing or malformed ticket is answered only once the
			// headers have passed (DESIGN 1.3's order), in OnBeforeUpgrade.
			t, ok := queryValue(query, ticketParam)
			l.hs.queryTicket = ok
			if ok && len(t) >= ticket.TextLen && len(t) <= ticket.MaxTextLen && isBase64URL(t) {
				l.hs.ticketLen = copy(l.hs.ticket[:], t)
				l.hs.ticketOK = true
			}
			if since, ok := queryValue(query, sinceParam); ok {
				if _, _, valid := parseSince(since); !valid {
					return errRejectSince
				}
				l.hs.since = since
			}
			return nil
		},
		ProtocolCustom: l.offeredProtocols,
		OnHeader: func(key, value []byte) error {
			if !bytes.EqualFold(key, originKey) {
				return nil
			}
			l.hs.setOrigin(value)
			if anyOrigin {
				return nil
			}
			for _, o := range cfg.Origins {
				if string(value) == o {
					return nil
				}
			}
			return errRejectOrigin
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !l.hs.protocolsConsistent() {
				return nil, errRejectProtocol
			}
			if !l.hs.ticketOK {
				return nil, errRejectTicket
			}
			// Stop's close pass may have run on this loop already: admit
			// nothing that would outlive the drain.
			if l.srv.stopping.Load() {
				return nil, errRejectDraining
			}
			if max := cfg.MaxConns; max > 0 {
				if l.srv.openConns.Add(1) > int64(max) {
					l.srv.openConns.Add(-1)
					return nil, errRejectCapacity
				}
				l.hs.reserved = true
			}
			claims, err := l.redeem()
			if err != nil {
				return nil, err
			}
			// After Redeem on purpose: a ticket shown from the wrong
			// Origin was stolen or misused, and is spent (DESIGN 1.7).
			// Before the quota, which must count only admitted connections.
			if !l.hs.originMatches(claims.Origin) {
				return nil, errRejectOrigin
			}
			// What outlives the handshake is copied (the quota's key, the
			// connection's user and grants): the claims' strings may point
			// into the ticket store's arena (ticket.Map), where one string
			// kept for a connection's life holds its whole 4 KiB chunk. The
			// user's copy is the personal channel's name without its '#'.
			l.hs.personal = PersonalChannel(claims.Subject)
			claims.Subject = l.hs.personal[1:]
			claims.Channels = cloneStrings(claims.Channels)
			if l.srv.quota.m != nil && !l.srv.quota.take(l.quota, claims.Subject) {
				return nil, errRejectUserMax
			}
			l.hs.claims = claims
			return l.upgradeHeader(), nil
		},
	}
	if cfg.Compression {
		l.scanExt = l.scanExtension
		up.ExtensionCustom = l.offeredExtensions
	}
	return up
}

// queryValue finds key's value in a raw query without decoding it (a ticket
// is base64url and never needs escapes).
func queryValue(query, key []byte) ([]byte, bool) {
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		if len(pair) > len(key) && pair[len(key)] == '=' && bytes.Equal(pair[:len(key)], key) {
			return pair[len(key)+1:], true
		}
	}
	return nil, false
}

func isBase64URL(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// admit runs the upgrade over hdr, exactly the request line and headers up
// to and including the blank line. On success it fills c (user, id,
// grants) and leaves in l.hs.io.out the 101 response (the welcome follows
// once the personal channel's position is known); on
// failure it returns the reason and leaves no MaxConns slot held.
func (l *loop) admit(c *Conn, hdr []byte) (RejectReason, bool) {
	if !requestWellFormed(hdr) {
		return RejectBadRequest, false
	}
	l.hs.io.in = hdr
	l.hs.io.out = l.hs.io.out[:0]
	l.hs.reserved, l.hs.ticketOK, l.hs.since, l.hs.deflate = false, false, nil, false
	l.hs.binding.reset()
	_, err := l.up.Upgrade(&l.hs.io)
	l.hs.io.in = nil
	if err != nil {
		if l.hs.reserved {
			l.srv.openConns.Add(-1)
		}
		l.hs.claims, l.hs.personal = ticket.Claims{}, ""
		return rejectionFor(err), false
	}
	if !l.hs.reserved {
		l.srv.openConns.Add(1)
	}
	c.personal = l.hs.personal
	if l.hs.deflate {
		c.deflate = true
		l.srv.deflateConns.Add(1)
	}
	c.grants = l.hs.claims.Channels
	if l.hs.originSeen { // a refresh ticket must come from the same page
		c.origin = l.internOrigin()
	}
	if exp := l.hs.claims.SessionExpires; !exp.IsZero() {
		c.expires = sessionEnd(l.srv.now(), time.Until(exp))
	}
	l.hs.claims, l.hs.personal = ticket.Claims{}, ""
	c.seq = l.lastSeq.Add(1)
	return 0, true
}

// sessionEnd is the server-clock time a session ends, left from
// now: at least 1 (0 means never), and saturated rather than wrapped when
// left is near time.Duration's maximum (an expiry centuries away).
func sessionEnd(now int64, left time.Duration) int64 {
	if int64(left) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return max(now+int64(left), 1)
}

// handshake handles traffic on a connection that has not upgraded yet. It
// reports done when the connection is now open and its remaining bytes are
// frames.
func (l *loop) handshake(c *Conn) (action gnet.Action, done bool) {
	if c.redeeming {
		return gnet.None, false // its ticket is being redeemed (admit_async.go)
	}
	gc := c.gc
	n := gc.InboundBuffered()
	if n == 0 {
		return gnet.None, false
	}
	limit := min(n, l.srv.cfg.MaxHeaderBytes)
	buf, err := gc.Peek(limit)
	if err != nil {
		return gnet.None, false
	}
	end := bytes.Index(buf, headerEnd)
	if end < 0 {
		if n >= l.srv.cfg.MaxHeaderBytes {
			return l.reject(c, RejectHeaderTooLarge), false
		}
		return gnet.None, false
	}
	hdrLen := end + len(headerEnd)
	l.hs.conn = c
	reason, ok := l.admit(c, buf[:hdrLen])
	l.hs.conn = nil
	if !ok {
		if reason == rejectPending {
			return gnet.None, false // the header stays buffered until the redeem answers
		}
		return l.reject(c, reason), false
	}
	var since *broker.Position
	if l.hs.since != nil {
		off, epoch, _ := parseSince(l.hs.since)
		since = &broker.Position{Offset: off, Epoch: epoch}
	}
	_, _ = gc.Discard(hdrLen)
	c.phase = phaseWelcome
	now := l.srv.now()
	c.lastRead, c.lastPing = now, now
	l.add(c)
	l.counters.handshakes.Add(1)
	// The welcome needs the personal channel's position; frames the client
	// sends before it wait in gnet's buffer. Welcomed at once (an
	// in-process broker), the connection is open now and the caller reads
	// them; else finishSub does, once the welcome is out.
	l.welcome(c, l.hs.io.out, since)
	return gnet.None, c.phase == phaseOpen
}

// parseSince parses the upgrade URL's since=<offset>:<epoch> (the epoch
// query-escaped or not). It allocates only for a valid one.
func parseSince(b []byte) (offset uint64, epoch string, ok bool) {
	i := bytes.IndexByte(b, ':')
	if i <= 0 || i > 20 || len(b)-i-1 > 3*maxEpochBytes {
		return 0, "", false
	}
	for _, c := range b[:i] {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		d := uint64(c - '0')
		if offset > (1<<64-1-d)/10 {
			return 0, "", false
		}
		offset = offset*10 + d
	}
	raw := b[i+1:]
	if bytes.IndexByte(raw, '%') < 0 && bytes.IndexByte(raw, '+') < 0 {
		return offset, string(raw), len(raw) <= maxEpochBytes
	}
	e, err := url.QueryUnescape(string(raw))
	if err != nil || len(e) > maxEpochBytes {
		return 0, "", false
	}
	return offset, e, true
}

// reject answers a refused handshake once and closes the connection.
func (l *loop) reject(c *Conn, reason RejectReason) gnet.Action {
	l.counters.rejected[reason].Add(1)
	if lg := l.srv.log; lg != nil && lg.Enabled(context.Background(), levelDebug) {
		// Never the request line: its query holds the ticket.
		lg.Debug("handshake rejected", "reason", reason.String(), "remote", c.gc.RemoteAddr())
	}
	if resp := rejectResponses[reason]; resp != nil {
		_, _ = c.gc.Write(resp)
	}
	return gnet.Close
}

// internOrigin returns the handshake's Origin as a string, without
// allocating when it is one of the configured Origins. (Not the bound
// ticket's claim of the same text: that may live in the ticket store's
// arena, see the redeem hook.)
func (l *loop) internOrigin() string {
	for _, o := range l.srv.cfg.Origins {
		if o == string(l.hs.origin) {
			return o
		}
	}
	return string(l.hs.origin)
}

// cloneStrings returns a copy of ss whose strings share nothing with ss's;
// nil for none.
func cloneStrings(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

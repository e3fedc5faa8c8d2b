package engine

import "github.com/gobwas/ws"

// CloseReason says why an upgraded connection ended. Each reason has, in one
// table, the close code the server sends, the reason text on the wire and
// the metric label (turnstile_closes_total{reason}). It indexes
// Stats.Closes. The zero value, CloseConnectionLost, is what a connection
// that ended without any decided reason (the client vanished, a write
// failed) is counted as.
type CloseReason uint8

// Reasons a connection ends (DESIGN 1.3's close codes). Add a reason by
// adding a constant before NumCloseReasons and its row in closeReasons.
const (
	CloseConnectionLost    CloseReason = iota // TCP ended without a close handshake (1006, never on the wire)
	CloseClient                               // the client closed; its code is echoed
	CloseProtocolError                        // 1002: a frame broke RFC 6455
	CloseBadCloseFrame                        // 1002: a close frame with one byte or an invalid code
	CloseInvalidUTF8                          // 1007: text (or a close reason) that is not UTF-8
	CloseTooBig                               // 1009: a message over MaxMessageBytes
	CloseSlowConsumer                         // 1008: outbound queue over MaxPendingBytes
	CloseSessionExpired                       // 1008: the ticket's session ended
	CloseIdleTimeout                          // 1001: nothing from the client for IdleTimeout
	CloseShutdown                             // 1001: Stop
	CloseHandshakeTimeout                     // no complete upgrade within HandshakeTimeout (no frame)
	CloseInputFlood                           // 1008: input arrives faster than the loop gives the connection turns
	CloseCommandFlood                         // 1008: more than 100 commands per second (DESIGN 1.4)
	CloseDisconnected                         // 4001: a backend's POST /disconnect (DESIGN 1.5)
	CloseBrokerUnavailable                    // 1011: the personal channel's position could not be read
	NumCloseReasons
)

// closeReasonInfo is one row of the table: what a reason sends and how it
// is counted.
type closeReasonInfo struct {
	code  ws.StatusCode // 0: no close frame of our own (lost, handshake) or the client's code (echo)
	text  string        // the close frame's reason, at most 123 bytes
	label string        // metric label and log value
}

var closeReasons = [NumCloseReasons]closeReasonInfo{
	CloseConnectionLost:    {0, "", "connection_lost"},
	CloseClient:            {0, "", "client_close"},
	CloseProtocolError:     {ws.StatusProtocolError, "protocol error", "protocol_error"},
	CloseBadCloseFrame:     {ws.StatusProtocolError, "invalid close frame", "bad_close_frame"},
	CloseInvalidUTF8:       {ws.StatusInvalidFramePayloadData, "invalid utf-8", "invalid_utf8"},
	CloseTooBig:            {ws.StatusMessageTooBig, "message too big", "too_big"},
	CloseSlowConsumer:      {ws.StatusPolicyViolation, "slow consumer", "slow_consumer"},
	CloseSessionExpired:    {ws.StatusPolicyViolation, "session expired", "session_expired"},
	CloseIdleTimeout:       {ws.StatusGoingAway, "idle timeout", "idle_timeout"},
	CloseShutdown:          {ws.StatusGoingAway, "server shutting down", "shutdown"},
	CloseHandshakeTimeout:  {0, "", "handshake_timeout"},
	CloseInputFlood:        {ws.StatusPolicyViolation, "too much input", "input_flood"},
	CloseCommandFlood:      {ws.StatusPolicyViolation, "too many commands", "command_flood"},
	CloseDisconnected:      {closeDisconnected, "disconnected by the server", "disconnected"},
	CloseBrokerUnavailable: {ws.StatusInternalServerError, "broker unavailable", "broker_unavailable"},
}

// String is the metric label of the reason, e.g. "slow_consumer".
func (r CloseReason) String() string {
	if r < NumCloseReasons {
		return closeReasons[r].label
	}
	return "unknown"
}

// Code is the close code the server sends for r; 0 when it sends none of
// its own (a lost connection, a handshake timeout, an echoed client close).
func (r CloseReason) Code() ws.StatusCode {
	if r < NumCloseReasons {
		return closeReasons[r].code
	}
	return ws.StatusInternalServerError
}

// Text is the reason text of r's close frame.
func (r CloseReason) Text() string {
	if r < NumCloseReasons {
		return closeReasons[r].text
	}
	return ""
}

// serverInitiated reports whether the server decided the close: those are
// logged for operators; a client's close or a vanished client is not news.
func (r CloseReason) serverInitiated() bool {
	return r != CloseConnectionLost && r != CloseClient
}

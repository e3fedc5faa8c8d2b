// Package cwire is the load client's side of Centrifuge's JSON client
// protocol (v2), for the centrifuge peer (bench/peers/centrifuge): the
// connect command it sends after the upgrade, and the reading of what the
// server sends back: replies and pushes, several to a WebSocket message,
// one per line, and application pings, an empty object to be answered
// with one.
//
// It knows only what a load connection meets: a connect without a token
// (the ticket admitted it), server-side subscriptions, publications, async
// messages (echo) and pings.
package cwire

import (
	"bytes"
	"encoding/json"
)

// Connect is the command a connection sends once upgraded. Its reply is
// the welcome.
var Connect = []byte(`{"id":1,"connect":{}}`)

// Pong answers a Ping.
var Pong = []byte(`{}`)

// Kind is what one line from the server is.
type Kind uint8

const (
	Other        Kind = iota // anything else: other replies, other pushes
	Ping                     // "{}": answer with Pong
	ConnectReply             // the reply to Connect: the welcome
	Error                    // a reply carrying an error, e.g. to Connect
	Publication              // a publication in a subscribed channel
	Message                  // an async message (the echo of a Send)
)

// Each calls f for every line of a WebSocket message: the JSON protocol
// puts one reply or push on each.
func Each(msg []byte, f func(line []byte)) {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		if len(line) > 0 {
			f(line)
		}
	}
}

// line is the part of a reply or push this package reads.
type line struct {
	ID      uint32          `json:"id"`
	Connect json.RawMessage `json:"connect"`
	Error   json.RawMessage `json:"error"`
	Push    *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data json.RawMessage `json:"data"`
		} `json:"pub"`
		Message *struct {
			Data json.RawMessage `json:"data"`
		} `json:"message"`
	} `json:"push"`
}

// Parse reads one line. For a Publication or a Message, data is its
// payload as published or sent (a JSON value, copied), and channel is
// the publication's channel.
func Parse(b []byte) (k Kind, channel string, data []byte) {
	if len(b) == 2 && b[0] == '{' && b[1] == '}' {
		return Ping, "", nil
	}
	var l line
	if json.Unmarshal(b, &l) != nil {
		return Other, "", nil
	}
	switch {
	case l.Error != nil:
		return Error, "", nil
	case l.Connect != nil:
		return ConnectReply, "", nil
	case l.Push != nil && l.Push.Pub != nil:
		return Publication, l.Push.Channel, l.Push.Pub.Data
	case l.Push != nil && l.Push.Message != nil:
		return Message, "", l.Push.Message.Data
	}
	return Other, "", nil
}

// Send wraps data (one JSON value) as an async message command.
func Send(dst, data []byte) []byte {
	dst = append(dst, `{"send":{"data":`...)
	dst = append(dst, data...)
	return append(dst, `}}`...)
}

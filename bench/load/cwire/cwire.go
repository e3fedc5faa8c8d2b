// Package cwire is the load client's side of Centrifuge's JSON client
// protocol (v2), for the centrifuge peer (bench/peers/centrifuge): the
// commands it sends after the upgrade (connect, subscribe with or without
// recovery, send), and the reading of what the server sends back: replies
// and pushes, several to a WebSocket message, one per line, and
// application pings, an empty object to be answered with one.
//
// It knows only what a load connection meets: a connect without a token
// (the ticket admitted it), server-side subscriptions, client-side
// subscriptions to recoverable channels, publications with their offsets,
// async messages (echo) and pings.
package cwire

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Connect is the command a connection sends once upgraded. Its reply is
// the welcome.
var Connect = []byte(`{"id":1,"connect":{}}`)

// Pong answers a Ping.
var Pong = []byte(`{}`)

// Kind is what one line from the server is.
type Kind uint8

const (
	Other          Kind = iota // anything else: other replies, other pushes
	Ping                       // "{}": answer with Pong
	ConnectReply               // the reply to Connect: the welcome
	SubscribeReply             // the reply to a Subscribe
	Error                      // a reply carrying an error, e.g. to Connect
	Publication                // a publication in a subscribed channel
	Message                    // an async message (the echo of a Send)
)

// Line is what Parse read of one line. Data are copies: a Line outlives
// the buffer it was read from.
type Line struct {
	Kind    Kind
	Channel string // a Publication's
	Data    []byte // a Publication's or Message's payload, a JSON value as published or sent
	// Offset: a Publication's offset in its channel. For a SubscribeReply,
	// the channel's top (the newest offset) when not recovering, and the
	// offset asked for when recovering: Top says where the client is.
	Offset uint64
	Epoch  string // a SubscribeReply's
	// Recovering: the SubscribeReply answers a subscribe that asked to
	// recover; Recovered: it did, and Pubs is everything missed since the
	// position asked for, oldest first.
	Recovering, Recovered bool
	Pubs                  []Pub
}

// Top is the offset a client is at once it has taken a SubscribeReply's
// publications: the newest of them, or Offset when there are none.
func (l *Line) Top() uint64 {
	if n := len(l.Pubs); n > 0 {
		return max(l.Offset, l.Pubs[n-1].Offset)
	}
	return l.Offset
}

// Pub is one publication carried in a SubscribeReply.
type Pub struct {
	Data   []byte
	Offset uint64
}

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

// wirePub is a publication as the protocol writes it; Centrifuge leaves
// out fields at their zero value (offset 0, no epoch, recovered false).
type wirePub struct {
	Data   json.RawMessage `json:"data"`
	Offset uint64          `json:"offset"`
}

// wireLine is the part of a reply or push this package reads.
type wireLine struct {
	ID        uint32          `json:"id"`
	Connect   json.RawMessage `json:"connect"`
	Error     json.RawMessage `json:"error"`
	Subscribe *struct {
		Epoch         string    `json:"epoch"`
		Offset        uint64    `json:"offset"`
		Recovered     bool      `json:"recovered"`
		WasRecovering bool      `json:"was_recovering"`
		Publications  []wirePub `json:"publications"`
	} `json:"subscribe"`
	Push *struct {
		Channel string   `json:"channel"`
		Pub     *wirePub `json:"pub"`
		Message *struct {
			Data json.RawMessage `json:"data"`
		} `json:"message"`
	} `json:"push"`
}

// Parse reads one line; Kind is Other for anything it does not know or
// cannot read.
func Parse(b []byte) Line {
	if len(b) == 2 && b[0] == '{' && b[1] == '}' {
		return Line{Kind: Ping}
	}
	var l wireLine
	if json.Unmarshal(b, &l) != nil {
		return Line{}
	}
	switch {
	case l.Error != nil:
		return Line{Kind: Error}
	case l.Connect != nil:
		return Line{Kind: ConnectReply}
	case l.Subscribe != nil:
		s := l.Subscribe
		out := Line{Kind: SubscribeReply, Offset: s.Offset, Epoch: s.Epoch, Recovering: s.WasRecovering, Recovered: s.Recovered}
		for _, p := range s.Publications {
			out.Pubs = append(out.Pubs, Pub{Data: p.Data, Offset: p.Offset})
		}
		return out
	case l.Push != nil && l.Push.Pub != nil:
		return Line{Kind: Publication, Channel: l.Push.Channel, Data: l.Push.Pub.Data, Offset: l.Push.Pub.Offset}
	case l.Push != nil && l.Push.Message != nil:
		return Line{Kind: Message, Data: l.Push.Message.Data}
	}
	return Line{}
}

// Send wraps data (one JSON value) as an async message command.
func Send(dst, data []byte) []byte {
	dst = append(dst, `{"send":{"data":`...)
	dst = append(dst, data...)
	return append(dst, `}}`...)
}

// Subscribe appends the command subscribing to channel, with id. With an
// epoch it asks to recover everything after offset in that epoch.
func Subscribe(dst []byte, id uint32, channel string, offset uint64, epoch string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"subscribe":{"channel":`...)
	dst = strconv.AppendQuote(dst, channel)
	if epoch != "" {
		dst = append(dst, `,"recover":true,"offset":`...)
		dst = strconv.AppendUint(dst, offset, 10)
		dst = append(dst, `,"epoch":`...)
		dst = strconv.AppendQuote(dst, epoch)
	}
	return append(dst, `}}`...)
}

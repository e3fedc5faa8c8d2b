package engine

import (
	"strconv"

	"github.com/gobwas/ws"
)

// This file is the server → client wire format, all of it: every frame the
// server sends is built here (PROTOCOL.md documents them for client authors).
// Each append function writes a JSON object body; frames are finished with
// appendFrame. Nothing here allocates unless dst lacks room.

// Command reply ids: a command without an id gets replies without one.
type cmdID struct {
	n  uint64
	ok bool
}

// recovery is what a subscription's since (or the upgrade URL's) came to.
type recovery uint8

const (
	recoveryNone  recovery = iota // no since was given
	recoveryOK                    // every missed message follows
	recoveryFalse                 // since could not be served; none follows
)

// position is a channel's offset and epoch in wire form.
type position struct {
	offset uint64
	epoch  string
}

func appendID(dst []byte, id cmdID) []byte {
	if !id.ok {
		return dst
	}
	dst = append(dst, `,"id":`...)
	return strconv.AppendUint(dst, id.n, 10)
}

func appendRecovery(dst []byte, r recovery, missed int) []byte {
	switch r {
	case recoveryOK:
		dst = append(dst, `,"recovered":true,"missed":`...)
		return strconv.AppendInt(dst, int64(missed), 10)
	case recoveryFalse:
		return append(dst, `,"recovered":false`...)
	}
	return dst
}

func appendPosition(dst []byte, p position) []byte {
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, p.offset, 10)
	dst = append(dst, `,"epoch":`...)
	return appendJSONString(dst, p.epoch)
}

// appendWelcome appends the welcome body: the user, the connection id and
// the personal channel's position (and its recovery, if since was given).
func appendWelcome(dst []byte, user string, id []byte, personal string, p position, r recovery, missed int) []byte {
	dst = append(dst, `{"type":"welcome","user":`...)
	dst = appendJSONString(dst, user)
	dst = append(dst, `,"conn":"`...)
	dst = append(dst, id...) // base36 and dots: nothing to escape
	dst = append(dst, '"')
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, personal)
	dst = appendPosition(dst, p)
	dst = appendRecovery(dst, r, missed)
	return append(dst, '}')
}

// appendSubscribed appends a subscribed reply body.
func appendSubscribed(dst []byte, id cmdID, channel string, p position, r recovery, missed int) []byte {
	dst = append(dst, `{"type":"subscribed"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, channel)
	dst = appendPosition(dst, p)
	dst = appendRecovery(dst, r, missed)
	return append(dst, '}')
}

// appendUnsubscribed appends an unsubscribed reply body.
func appendUnsubscribed(dst []byte, id cmdID, channel string) []byte {
	dst = append(dst, `{"type":"unsubscribed"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, channel)
	return append(dst, '}')
}

// Error codes of the error frame (DESIGN 1.4).
const (
	codeBadRequest      = "bad_request"
	codeForbidden       = "forbidden"
	codeTooManyChannels = "too_many_channels"
	codeUnavailable     = "unavailable"
)

// appendError appends an error reply body; reason is never empty.
func appendError(dst []byte, id cmdID, code, reason string) []byte {
	dst = append(dst, `{"type":"error"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","reason":`...)
	dst = appendJSONString(dst, reason)
	return append(dst, '}')
}

// appendPong appends a pong reply body.
func appendPong(dst []byte, id cmdID) []byte {
	dst = append(dst, `{"type":"pong"`...)
	dst = appendID(dst, id)
	return append(dst, '}')
}

// appendRefreshed appends a refreshed reply body; expires is unix seconds.
func appendRefreshed(dst []byte, id cmdID, expires int64) []byte {
	dst = append(dst, `{"type":"refreshed"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"expires":`...)
	dst = strconv.AppendInt(dst, expires, 10)
	return append(dst, '}')
}

// encodeMessage builds a broadcast's frame {"type":"message","data":…}
// once for all recipients, in one allocation.
func encodeMessage(data []byte) []byte {
	const head, tail = `{"type":"message","data":`, `}`
	n := len(head) + len(data) + len(tail)
	frame := appendFrameHeader(make([]byte, 0, maxHeaderLen+n), true, ws.OpText, n)
	return append(append(append(frame, head...), data...), tail...)
}

// encodeChannelMessage builds a channel publication's frame
// {"type":"message","channel":…,"offset":…,"data":…} once for all
// recipients, in one allocation.
func encodeChannelMessage(channel string, offset uint64, data []byte) []byte {
	const head, mid, tail = `{"type":"message","channel":`, `,"offset":`, `,"data":`
	var num [20]byte
	off := strconv.AppendUint(num[:0], offset, 10)
	n := len(head) + jsonStringLen(channel) + len(mid) + len(off) + len(tail) + len(data) + 1
	frame := appendFrameHeader(make([]byte, 0, maxHeaderLen+n), true, ws.OpText, n)
	frame = append(frame, head...)
	frame = appendJSONString(frame, channel)
	frame = append(frame, mid...)
	frame = append(frame, off...)
	frame = append(frame, tail...)
	frame = append(frame, data...)
	return append(frame, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; s is valid UTF-8 (it came
// from a JSON token or a validated name), so only quotes, backslashes and
// controls need escapes.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// jsonStringLen is len(appendJSONString(nil, s)).
func jsonStringLen(s string) int {
	n := 2 + len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

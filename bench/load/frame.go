package load

import (
	"bytes"
	"encoding/binary"
)

// WebSocket opcodes the client handles.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

var headEnd = []byte("\r\n\r\n")

// parseResponseHead finds a complete HTTP/1.1 response head at the start of
// b. It returns its status code and length, or n == 0 when more bytes are
// needed.
func parseResponseHead(b []byte) (status, n int, err error) {
	end := bytes.Index(b, headEnd)
	if end < 0 {
		if len(b) > 16384 {
			return 0, 0, errHandshake
		}
		return 0, 0, nil
	}
	// "HTTP/1.1 101 Switching Protocols"
	if end < 12 || !bytes.HasPrefix(b, []byte("HTTP/1.")) || b[8] != ' ' {
		return 0, 0, errHandshake
	}
	for _, c := range b[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, errHandshake
		}
		status = status*10 + int(c-'0')
	}
	return status, end + len(headEnd), nil
}

// frame is one server frame as parseFrame reads it.
type frame struct {
	fin     bool
	rsv1    bool // permessage-deflate: the message starting here is compressed
	op      byte
	payload []byte // aliases the bytes parsed
}

// parseFrame reads one unmasked server frame at the start of b. It returns
// total == 0 when the frame is not complete yet. RSV1 is returned for the
// caller to judge (it is valid only once permessage-deflate is agreed);
// RSV2 and RSV3 belong to no extension the client offers.
func parseFrame(b []byte) (f frame, total int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	if b[1]&0x80 != 0 || b[0]&0x30 != 0 {
		return f, 0, errFrame // servers never mask; only RSV1 has a meaning
	}
	f.fin, f.rsv1, f.op = b[0]&0x80 != 0, b[0]&0x40 != 0, b[0]&0x0F
	size, hdr := uint64(b[1]&0x7F), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
		if size > 1<<30 {
			return f, 0, errFrame
		}
	}
	if uint64(len(b)-hdr) < size {
		return f, 0, nil
	}
	total = hdr + int(size)
	f.payload = b[hdr:total]
	return f, total, nil
}

// received is how a message arrived: its bytes on the wire (every frame's
// header and payload, as read from the socket, before any inflating) and
// whether it came compressed.
type received struct {
	wire     int
	deflated bool
}

// fragment is a message whose first frame came without FIN: the frames so
// far, until the last (RFC 6455 5.4). Servers fragment large messages
// (gorilla at its write buffer's size), compressed ones included, where
// only the first frame carries RSV1.
type fragment struct {
	op   byte
	rx   received
	data []byte
}

// appendClientFrame appends a final, masked frame carrying payload.
func appendClientFrame(dst []byte, op byte, payload []byte, mask [4]byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range dst[start:] {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

var stampKey, seqKey = []byte(`"t":`), []byte(`"seq":`)

// extractStamp returns the integer after the first `"t":` in b: the send
// time in Unix nanoseconds that the load generator puts in every message.
func extractStamp(b []byte) (int64, bool) { return extractInt(b, stampKey) }

// extractInt returns the non-negative integer after the first key in b.
func extractInt(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	n := 0
	for ; n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	return v, n > 0
}

// upgradeRequest is the handshake a worker sends; the key is fixed because
// the client does not check Sec-WebSocket-Accept (it measures, it does not
// verify). With deflate it offers permessage-deflate (inflate.go).
func upgradeRequest(host, path, ticket string, deflate bool) []byte {
	var b []byte
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, "?ticket="...)
	b = append(b, ticket...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"...)
	if deflate {
		b = append(b, "Sec-WebSocket-Extensions: "+deflateOffer+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

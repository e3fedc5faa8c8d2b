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

// parseFrame reads one unmasked server frame at the start of b. It returns
// total == 0 when the frame is not complete yet. payload aliases b.
func parseFrame(b []byte) (fin bool, op byte, payload []byte, total int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	if b[1]&0x80 != 0 || b[0]&0x70 != 0 {
		return false, 0, nil, 0, errFrame // servers never mask; no extensions negotiated
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	size, hdr := uint64(b[1]&0x7F), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
		if size > 1<<30 {
			return false, 0, nil, 0, errFrame
		}
	}
	if uint64(len(b)-hdr) < size {
		return false, 0, nil, 0, nil
	}
	total = hdr + int(size)
	return fin, op, b[hdr:total], total, nil
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

var stampKey = []byte(`"t":`)

// extractStamp returns the integer after the first `"t":` in b: the send
// time in Unix nanoseconds that the load generator puts in every message.
func extractStamp(b []byte) (int64, bool) {
	i := bytes.Index(b, stampKey)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(stampKey):]
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
// verify).
func upgradeRequest(host, path, ticket string) []byte {
	var b []byte
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, "?ticket="...)
	b = append(b, ticket...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	return b
}

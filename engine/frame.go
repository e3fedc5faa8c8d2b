package engine

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// maxHeaderLen is the longest frame header: 2 + 8 (length) + 4 (mask).
const maxHeaderLen = 14

// parseHeader parses the frame header at the start of b without allocating.
// It returns n == 0 when b does not yet hold the whole header, and
// errFrameLength when the 64-bit length has its top bit set.
func parseHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, errFrameLength
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// appendFrame appends one unmasked (server to client) frame to dst.
func appendFrame(dst []byte, fin bool, op ws.OpCode, payload []byte) []byte {
	return append(appendFrameHeader(dst, fin, op, len(payload)), payload...)
}

// appendFrameHeader appends the header of an unmasked frame whose payload
// of n bytes the caller appends next.
func appendFrameHeader(dst []byte, fin bool, op ws.OpCode, n int) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, b0, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// appendClose appends a close frame with code and reason (reason must fit).
func appendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	n := 2 + len(reason)
	dst = append(dst, 0x80|byte(ws.OpClose), byte(n), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// validCloseCode reports whether a client may send code in a close frame
// (RFC 6455 7.4 and the IANA registry): 1000-1003, 1007-1014, 3000-4999.
// ws.CheckCloseFrameData lets 5000 and above through, so it is checked here.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

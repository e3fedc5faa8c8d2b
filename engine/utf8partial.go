package engine

import "github.com/gobwas/ws"

// Text is validated as its bytes arrive, not only when a frame is whole:
// a client that sends an invalid sequence at the start of a large frame and
// then stalls is failed with 1007 at once (Autobahn 6.4.3 and 6.4.4, strict
// rather than non-strict). The bytes of an incomplete frame stay in gnet's
// buffer, masked; validatePartial unmasks a copy of the new ones at their
// offset in the mask and feeds the connection's validator, and the complete
// frame later validates only what follows them.

// partialEvery is the size of an incomplete frame's prefix up to which every
// arrival is validated at once.
const partialEvery = 4096

// isText reports whether a data frame with header h carries text.
func (c *Conn) isText(h ws.Header) bool {
	return h.OpCode == ws.OpText || (h.OpCode == ws.OpContinuation && c.fragOp == ws.OpText)
}

// validatePartial validates the payload bytes of an incomplete text frame
// (header of hl bytes, n bytes buffered) that arrived since the last call.
// It reports false when the text so far cannot be valid UTF-8.
func (l *loop) validatePartial(c *Conn, h ws.Header, hl, n int) bool {
	if c.phase != phaseOpen || !c.isText(h) || h.Rsv != 0 || c.fragDeflate {
		// Compressed text is validated once inflated.
		return true
	}
	avail := int64(n - hl)
	// gnet's Peek copies the buffered bytes when they span its buffers, so
	// a large frame dribbled in byte by byte would cost quadratic copying:
	// past partialEvery, validate again only once the bytes buffered have
	// doubled since the last time (linear in total, and the failure still
	// comes before the frame is whole).
	if avail <= c.utf8Seen || (avail > partialEvery && avail < 2*c.utf8Seen) {
		return true
	}
	buf, err := c.gc.Peek(n)
	if err != nil {
		return true
	}
	p := buf[hl:]
	for c.utf8Seen < avail {
		chunk := l.utf8Buf[:min(int64(len(l.utf8Buf)), avail-c.utf8Seen)]
		copy(chunk, p[c.utf8Seen:])
		ws.Cipher(chunk, h.Mask, int(c.utf8Seen))
		if !c.utf8.write(chunk) {
			return false
		}
		c.utf8Seen += int64(len(chunk))
	}
	return true
}

// unseen is the part of a complete text frame's payload that
// validatePartial has not validated yet.
func (c *Conn) unseen(payload []byte) []byte { return payload[c.utf8Seen:] }

// wholeText validates an unfragmented text message: all at once on the
// fast path, or the rest after what arrived earlier.
func (l *loop) wholeText(c *Conn, payload []byte) bool {
	if c.utf8Seen == 0 {
		return validUTF8(payload)
	}
	return c.utf8.write(c.unseen(payload)) && c.utf8.done()
}

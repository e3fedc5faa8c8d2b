package engine

import (
	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

// readFrames drains the complete frames buffered on an open connection,
// up to one turn's budget (turn.go). A partial header or payload stays in
// gnet's buffer for the next call.
func (l *loop) readFrames(c *Conn) gnet.Action {
	action := l.readTurn(c)
	if action == gnet.None {
		l.flushBatch(c)
	} else {
		l.resetBatch()
	}
	return action
}

func (l *loop) readTurn(c *Conn) gnet.Action {
	gc := c.gc
	c.lastRead = l.srv.now()
	frames, bytes := 0, 0
	for {
		n := gc.InboundBuffered()
		if n < 2 {
			return gnet.None
		}
		if frames >= framesPerTurn || bytes >= bytesPerTurn {
			if n > l.inboundLimit() {
				return l.fail(c, CloseInputFlood)
			}
			l.resumeLater(c)
			return gnet.None
		}
		hb, err := gc.Peek(min(n, maxHeaderLen))
		if err != nil {
			return gnet.None
		}
		h, hl, err := parseHeader(hb)
		if err != nil {
			return l.fail(c, CloseProtocolError)
		}
		if hl == 0 {
			return gnet.None
		}
		if r, ok := l.check(c, h); !ok {
			return l.fail(c, r)
		}
		total := int64(hl) + h.Length
		if int64(n) < total {
			if !l.validatePartial(c, h, hl, n) {
				return l.fail(c, CloseInvalidUTF8)
			}
			return gnet.None
		}
		frame, err := gc.Peek(int(total))
		if err != nil {
			return gnet.None
		}
		payload := frame[hl:]
		ws.Cipher(payload, h.Mask, 0)
		action := l.onFrame(c, h, payload)
		c.utf8Seen = 0
		if c.phase == phaseClosed {
			return gnet.None // gnet closed it while we wrote; c is gone
		}
		_, _ = gc.Discard(int(total))
		frames++
		bytes += int(total)
		if action != gnet.None {
			return action
		}
	}
}

// check applies RFC 6455's rules to a header before its payload is read:
// masking, reserved bits and opcodes, control frame limits, fragmentation
// order, and the message size limit over all fragments.
func (l *loop) check(c *Conn, h ws.Header) (CloseReason, bool) {
	state := ws.StateServerSide
	if c.fragOp != 0 {
		state = state.Set(ws.StateFragmented)
	}
	if h.Rsv != 0 {
		// RSV1 marks a compressed message: only on its first frame, only
		// from a client that negotiated permessage-deflate (RFC 7692 6).
		if h.Rsv != rsv1 || !c.deflate || h.OpCode.IsControl() || h.OpCode == ws.OpContinuation {
			return CloseProtocolError, false
		}
		state = state.Set(ws.StateExtended)
	}
	if err := ws.CheckHeader(h, state); err != nil {
		return CloseProtocolError, false
	}
	// Compare with the room left, not fragLen()+Length: a declared length near
	// 2^63 would overflow the sum and pass.
	if !h.OpCode.IsControl() && h.Length > int64(l.srv.cfg.MaxMessageBytes-c.fragLen()) {
		return CloseTooBig, false
	}
	return 0, true
}

// onFrame acts on one complete, unmasked frame.
func (l *loop) onFrame(c *Conn, h ws.Header, payload []byte) gnet.Action {
	switch h.OpCode {
	case ws.OpPing:
		if c.phase != phaseOpen {
			return gnet.None
		}
		l.queuePong(c, payload)
		return gnet.None
	case ws.OpPong:
		return gnet.None
	case ws.OpClose:
		return l.onClose(c, payload)
	}
	if c.phase != phaseOpen {
		return gnet.None // after our close, data is ignored
	}
	if h.OpCode != ws.OpContinuation {
		if h.Rsv == rsv1 {
			if h.Fin {
				return l.dispatchDeflated(c, h.OpCode, payload)
			}
			c.fragOp, c.fragDeflate = h.OpCode, true
			c.frag = &fragment{buf: append(make([]byte, 0, 2*len(payload)+64), payload...)}
			return gnet.None
		}
		if h.Fin {
			if h.OpCode == ws.OpText && !l.wholeText(c, payload) {
				return l.fail(c, CloseInvalidUTF8)
			}
			return l.dispatch(c, h.OpCode, payload)
		}
		c.fragOp = h.OpCode
		if h.OpCode == ws.OpText && !c.utf8.write(c.unseen(payload)) {
			return l.fail(c, CloseInvalidUTF8)
		}
		c.frag = &fragment{buf: append(make([]byte, 0, 2*len(payload)+64), payload...)}
		return gnet.None
	}
	if c.fragDeflate {
		c.frag.buf = append(c.frag.buf, payload...)
		if !h.Fin {
			return gnet.None
		}
		op, msg := c.fragOp, c.frag.buf
		c.fragOp, c.frag, c.fragDeflate = 0, nil, false
		return l.dispatchDeflated(c, op, msg)
	}
	if c.fragOp == ws.OpText && !c.utf8.write(c.unseen(payload)) {
		return l.fail(c, CloseInvalidUTF8)
	}
	c.frag.buf = append(c.frag.buf, payload...)
	if !h.Fin {
		return gnet.None
	}
	if c.fragOp == ws.OpText && !c.utf8.done() {
		return l.fail(c, CloseInvalidUTF8)
	}
	op, msg := c.fragOp, c.frag.buf
	c.fragOp, c.frag = 0, nil
	return l.dispatch(c, op, msg)
}

// dispatch hands a complete data message to echo, the OnMessage hook or
// the command reader.
func (l *loop) dispatch(c *Conn, op ws.OpCode, msg []byte) gnet.Action {
	l.counters.messagesIn.Add(1)
	cfg := &l.srv.cfg
	switch {
	case cfg.Echo:
		l.queueEcho(op, msg)
	case cfg.OnMessage != nil:
		cfg.OnMessage(c, byte(op), msg)
	default:
		return l.command(c, op, msg)
	}
	return gnet.None
}

// dispatchDeflated inflates a compressed message (within MaxMessageBytes:
// a bomb closes with 1009 before it takes more), validates its text and
// dispatches it.
func (l *loop) dispatchDeflated(c *Conn, op ws.OpCode, compressed []byte) gnet.Action {
	msg, err := l.inflate(compressed, l.srv.cfg.MaxMessageBytes)
	switch {
	case err == errInflateTooBig:
		return l.fail(c, CloseTooBig)
	case err != nil:
		return l.fail(c, CloseProtocolError)
	case op == ws.OpText && !validUTF8(msg):
		return l.fail(c, CloseInvalidUTF8)
	}
	return l.dispatch(c, op, msg)
}

// onClose answers the client's close: an invalid one with 1002 or 1007, a
// valid one with the same code; then the TCP connection is closed.
func (l *loop) onClose(c *Conn, payload []byte) gnet.Action {
	if c.phase != phaseOpen {
		return gnet.Close // the client answered our close
	}
	l.flushBatch(c)
	if c.phase != phaseOpen {
		return gnet.Close
	}
	switch len(payload) {
	case 0:
		l.out = append(l.out[:0], 0x80|byte(ws.OpClose), 0)
		c.phase = phaseClosing
		c.closeReason = CloseClient
		l.write(c, l.out)
		return gnet.Close
	case 1:
		return l.fail(c, CloseBadCloseFrame)
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(payload)
	if !validCloseCode(code) {
		return l.fail(c, CloseBadCloseFrame)
	}
	if err := ws.CheckCloseFrameData(code, reason); err != nil {
		if err == ws.ErrProtocolInvalidUTF8 {
			return l.fail(c, CloseInvalidUTF8)
		}
		return l.fail(c, CloseBadCloseFrame)
	}
	l.sendCloseCode(c, CloseClient, code)
	if c.phase == phaseClosed {
		return gnet.None
	}
	return gnet.Close
}

// fail sends r's close frame and asks gnet to close the connection.
func (l *loop) fail(c *Conn, r CloseReason) gnet.Action {
	l.flushBatch(c)
	if c.phase == phaseOpen {
		l.sendClose(c, r)
	}
	if c.phase == phaseClosed {
		return gnet.None
	}
	return gnet.Close
}

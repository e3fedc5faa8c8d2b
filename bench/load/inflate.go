package load

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
)

// The client's half of permessage-deflate (RFC 7692): it offers the
// extension with no context takeover either way, so every compressed
// message inflates on its own and one inflater serves every connection of
// an engine (its goroutine is the only user).

// deflateOffer is the extension the clients offer under -compression on:
// the only parameters turnstile and gorilla both accept.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// messageTail restores what the sender removed from the end of a
// compressed message (00 00 ff ff, RFC 7692 7.2.2), then adds an empty
// final stored block, so that the reader ends with io.EOF at the message's
// end rather than io.ErrUnexpectedEOF, which a truncated message gives.
var messageTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// maxInflated bounds one inflated message: far above any pushed payload,
// low enough that a broken stream cannot exhaust a worker.
const maxInflated = 16 << 20

var errInflate = errors.New("invalid permessage-deflate data")

// inflater decompresses messages one at a time. Not safe for concurrent use.
type inflater struct {
	src bytes.Reader
	in  []byte // the compressed message and messageTail
	r   io.ReadCloser
	out bytes.Buffer
}

// inflate returns the decompressed payload of one message. The result
// aliases the inflater's buffer: valid until the next call.
func (f *inflater) inflate(payload []byte) ([]byte, error) {
	f.in = append(append(f.in[:0], payload...), messageTail...)
	f.src.Reset(f.in)
	if f.r == nil {
		f.r = flate.NewReader(&f.src)
	} else if err := f.r.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	f.out.Reset()
	if _, err := f.out.ReadFrom(io.LimitReader(f.r, maxInflated+1)); err != nil {
		return nil, errInflate
	}
	if f.out.Len() > maxInflated {
		return nil, errInflate
	}
	return f.out.Bytes(), nil
}

// acceptsDeflate reports whether a 101 response head accepted the offer:
// a Sec-WebSocket-Extensions header naming permessage-deflate. Header names
// are case-insensitive; the extension's token is matched as sent.
func acceptsDeflate(head []byte) bool {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Extensions")) &&
			bytes.Contains(bytes.ToLower(value), []byte("permessage-deflate")) {
			return true
		}
	}
	return false
}

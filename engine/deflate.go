package engine

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// permessage-deflate (RFC 7692), negotiated only with
// server_no_context_takeover and client_no_context_takeover: every message
// is compressed on its own, so one compressed frame of a publish serves
// every compressing recipient (zframe), and nothing is kept per connection
// between messages (no ~600 KiB flate.Writer or 32 KiB window per
// connection: deflaters and inflaters are pooled and held only for the
// duration of one message).

// DefaultCompressionMinBytes is the smallest payload compressed when
// Config.CompressionMinBytes is 0: below it the deflate block overhead eats
// most of the gain.
const DefaultCompressionMinBytes = 256

// deflateLevel favours speed: a publish is compressed once, but a user
// publish may have a single recipient, and small JSON gains little from
// the slower levels.
const deflateLevel = flate.BestSpeed

// rsv1 is the RSV1 bit as parseHeader stores it in ws.Header.Rsv.
const rsv1 = 0x4

var (
	extDeflate = []byte("permessage-deflate")
	// The 101's extension answer, alone or beside the protocol answer,
	// built once: returning it from OnBeforeUpgrade must not allocate.
	deflateAnswer = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	// (Typed as the interface here: converting on return would box.)
	deflateHeader   ws.HandshakeHeader = ws.HandshakeHeaderString(deflateAnswer)
	deflateV1Header ws.HandshakeHeader = ws.HandshakeHeaderString(deflateAnswer + "Sec-WebSocket-Protocol: " + ProtocolV1 + "\r\n")
	// deflateTail ends a message's compressed bytes (RFC 7692 7.2.2: the
	// sender removed 00 00 ff ff) and adds an empty final block, so the
	// inflater reports io.EOF at the message's end.
	deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

	errInflateTooBig = errors.New("engine: inflated message over MaxMessageBytes")
	errInflate       = errors.New("engine: invalid deflate data")
)

// offeredExtensions is the Upgrader's ExtensionCustom when compression is
// on: it reads every Sec-WebSocket-Extensions header and notes whether one
// offer is a permessage-deflate whose parameters we can meet. It never
// hands gobwas an option (that would allocate one per handshake): the
// answer is deflateHeader, from OnBeforeUpgrade. An offer we cannot meet,
// or a header we cannot parse, is declined by not answering it; the
// upgrade never fails for it.
func (l *loop) offeredExtensions(v []byte, dst []httphead.Option) ([]httphead.Option, bool) {
	if l.hs.deflate {
		return dst, true
	}
	x := &l.hs.ext
	*x = extScan{cur: -1}
	if httphead.ScanOptions(v, l.scanExt) && (x.found || x.ok) {
		l.hs.deflate = true
	}
	return dst, true
}

// extScan is offeredExtensions' state while httphead scans one header; it
// lives in the handshake scratch, and scanExt is built once per loop, so
// that scanning allocates nothing.
type extScan struct {
	cur       int  // index of the option being read
	ok, found bool // it can be met so far; an earlier one could
	seen      [4]bool
}

// scanExtension is httphead.ScanOptions' callback over l.hs.ext.
func (l *loop) scanExtension(i int, name, attr, val []byte) httphead.Control {
	x := &l.hs.ext
	if i != x.cur {
		x.found = x.found || x.ok
		x.cur, x.ok, x.seen = i, bytes.Equal(name, extDeflate), [4]bool{}
	}
	if x.ok && attr != nil {
		x.ok = deflateParamOK(attr, val, &x.seen)
	}
	return httphead.ControlContinue
}

// deflateParamOK reports whether we can meet one parameter of a
// permessage-deflate offer: each at most once, no_context_takeover
// without a value, server_max_window_bits only at 15 (compress/flate
// always uses a 32 KiB window), client_max_window_bits at any valid value
// or none (we inflate with a 32 KiB window, which reads any smaller one).
func deflateParamOK(k, v []byte, seen *[4]bool) bool {
	i, ok := -1, false
	switch string(k) {
	case "server_no_context_takeover":
		i, ok = 0, len(v) == 0
	case "client_no_context_takeover":
		i, ok = 1, len(v) == 0
	case "server_max_window_bits":
		i, ok = 2, string(v) == "15"
	case "client_max_window_bits":
		i, ok = 3, len(v) == 0 || windowBitsOK(v)
	}
	if !ok || seen[i] {
		return false
	}
	seen[i] = true
	return true
}

// upgradeHeader is the 101's extra headers: the protocol answer
// (binding.go) and, if negotiated, the extension answer.
func (l *loop) upgradeHeader() ws.HandshakeHeader {
	switch {
	case !l.hs.deflate:
		return l.hs.protocolHeader()
	case l.hs.protoV1:
		return deflateV1Header
	}
	return deflateHeader
}

func windowBitsOK(v []byte) bool {
	switch string(v) {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}

// deflater is a pooled flate.Writer with its output buffer.
type deflater struct {
	w   *flate.Writer
	out sliceWriter
}

var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.out, deflateLevel)
	return d
}}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// deflateFrame returns a final RSV1 frame of op carrying payload
// compressed on its own, or nil when compression would not make it
// smaller. Safe from any goroutine.
func deflateFrame(op ws.OpCode, payload []byte) []byte {
	d := deflaters.Get().(*deflater)
	defer deflaters.Put(d)
	d.out.b = d.out.b[:0]
	d.w.Reset(&d.out)
	_, _ = d.w.Write(payload)
	_ = d.w.Flush()
	z := d.out.b
	if len(z) >= 4 {
		z = z[:len(z)-4] // the sync flush's 00 00 ff ff (RFC 7692 7.2.1)
	}
	if cap(d.out.b) > 256<<10 { // do not pool a one-off large buffer
		d.out.b = nil
	}
	if len(z) >= len(payload) {
		return nil
	}
	frame := appendFrameHeader(make([]byte, 0, maxHeaderLen+len(z)), true, op, len(z))
	frame[0] |= rsv1 << 4
	return append(frame, z...)
}

// zframe is the compressed form of one shared server frame, made at most
// once, by the first loop that has a compressing recipient for it.
type zframe struct {
	once  sync.Once
	frame []byte // nil: not smaller compressed; send the plain frame
}

// newZframe returns a zframe for a shared frame whose payload has n bytes,
// or nil when no recipient can want it compressed (compression off, no
// compressing connection on the node, or a payload below the threshold).
func (s *Server) newZframe(n int) *zframe {
	if !s.cfg.Compression || n < s.cfg.CompressionMinBytes || s.deflateConns.Load() == 0 {
		return nil
	}
	return &zframe{}
}

// frameFor returns what c gets for the shared plain frame: the compressed
// one if c negotiated compression and it is smaller, else plain. Called on
// c's loop; loops racing for the first compression wait for it.
func (z *zframe) frameFor(c *Conn, plain []byte) []byte {
	if z == nil || !c.deflate {
		return plain
	}
	z.once.Do(func() {
		hl := serverHeaderLen(plain)
		z.frame = deflateFrame(ws.OpCode(plain[0]&0x0f), plain[hl:])
	})
	if z.frame == nil {
		return plain
	}
	return z.frame
}

// serverHeaderLen is the header length of an unmasked frame we built.
func serverHeaderLen(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// inflateInput reads a message's compressed bytes, then deflateTail. It is
// an io.ByteReader so that flate does not wrap it in a bufio.Reader.
type inflateInput struct {
	a, b []byte
}

func (r *inflateInput) Read(p []byte) (int, error) {
	if len(r.a) == 0 {
		r.a, r.b = r.b, nil
	}
	if len(r.a) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.a)
	r.a = r.a[n:]
	return n, nil
}

func (r *inflateInput) ReadByte() (byte, error) {
	if len(r.a) == 0 {
		r.a, r.b = r.b, nil
	}
	if len(r.a) == 0 {
		return 0, io.EOF
	}
	c := r.a[0]
	r.a = r.a[1:]
	return c, nil
}

// inflater is a pooled flate reader with its input.
type inflater struct {
	r  io.ReadCloser
	in inflateInput
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.r = flate.NewReader(&f.in)
	return f
}}

// inflate decompresses one client message into l.inflated and returns it
// (valid until the next inflate on this loop). It fails with
// errInflateTooBig as soon as the output would pass limit bytes, having
// never held more than limit+1 of them, and with errInflate for data that
// is not a valid deflate stream.
func (l *loop) inflate(compressed []byte, limit int) ([]byte, error) {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.in = inflateInput{a: compressed, b: deflateTail}
	if err := f.r.(flate.Resetter).Reset(&f.in, nil); err != nil {
		return nil, errInflate
	}
	out := l.inflated[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				l.inflated = out[:0]
				return nil, errInflateTooBig
			}
			grow := min(max(2*cap(out), 512), limit+1)
			nb := make([]byte, len(out), grow) // exactly grow: append would round up
			copy(nb, out)
			out = nb
		}
		n, err := f.r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			l.inflated = out[:0]
			return nil, errInflateTooBig
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			l.inflated = out[:0]
			return nil, errInflate
		}
	}
	l.inflated = out[:0]
	if cap(out) > 1<<20 { // a loop keeps at most 1 MiB between messages
		l.inflated = nil
	}
	return out, nil
}

package engine

import (
	"bytes"
	"fmt"
	"testing"
)

// notification1K is a 1 KiB JSON notification, as a backend pushes one.
func notification1K() []byte {
	var b bytes.Buffer
	b.WriteString(`{"event":"order.updated","items":[`)
	for i := 0; b.Len() < 1000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%05d","qty":%d,"price":"%d.%02d","status":"shipped"}`, 10000+i*37, i%5+1, 10+i*3, i*7%100)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// BenchmarkBroadcastCompression broadcasts a 1 KiB JSON notification to n
// connections through the hub's path (one frame encoded per publish, one
// loop task): plain to plain connections, beside compressed (once per
// publish) to connections that negotiated permessage-deflate. wire-B/op
// is what the connections were handed, header included.
func BenchmarkBroadcastCompression(b *testing.B) {
	data := notification1K()
	for _, n := range []int{1000, 10000} {
		for _, deflate := range []bool{false, true} {
			name := fmt.Sprintf("plain/%d", n)
			if deflate {
				name = fmt.Sprintf("deflate/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				l := hubLoop(b, n)
				l.srv.cfg.Compression = true
				l.srv.cfg.CompressionMinBytes = DefaultCompressionMinBytes
				for _, c := range l.conns {
					c.deflate = deflate
					if deflate {
						l.srv.deflateConns.Add(1)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					frame := encodeMessage(data)
					if got := l.broadcastZ(frame, l.srv.newZframe(len(frame))); got != n {
						b.Fatalf("targeted %d", got)
					}
				}
				wire := 0
				for _, c := range l.conns {
					wire += c.gc.(*sinkConn).written
				}
				b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
			})
		}
	}
}

// BenchmarkInflate inflates a compressed 1 KiB client message with the
// loop's pooled inflater and buffer.
func BenchmarkInflate(b *testing.B) {
	l := benchLoop(b)
	z := deflateFrame(1, notification1K())
	payload := z[serverHeaderLen(z):]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.inflate(payload, 65536); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshakeDeflate admits an upgrade that offers
// permessage-deflate, beside the same upgrade with compression off (the
// offer ignored): what negotiating costs a handshake.
func BenchmarkHandshakeDeflate(b *testing.B) {
	hdr := []byte(upgradeRequest("/ws", benchGood, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"))
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("compression=%v", on), func(b *testing.B) {
			s, err := New(Config{Store: fixedStore{good: []byte(benchGood)}, Compression: on})
			if err != nil {
				b.Fatal(err)
			}
			l := newLoop(s, nil, 0)
			c := &Conn{}
			b.ReportAllocs()
			for b.Loop() {
				c.deflate = false
				if _, ok := l.admit(c, hdr); !ok || c.deflate != on {
					b.Fatalf("admit ok=%v deflate=%v", ok, c.deflate)
				}
				s.openConns.Add(-1)
			}
		})
	}
}

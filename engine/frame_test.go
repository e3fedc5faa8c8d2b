package engine

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

var headerCases = []struct {
	name    string
	in      []byte
	want    ws.Header
	n       int
	wantErr bool
}{
	{"empty", nil, ws.Header{}, 0, false},
	{"one byte", []byte{0x81}, ws.Header{}, 0, false},
	{"small unmasked", []byte{0x81, 0x05}, ws.Header{Fin: true, OpCode: ws.OpText, Length: 5}, 2, false},
	{"small masked", []byte{0x82, 0x85, 1, 2, 3, 4}, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 5}, 6, false},
	{"masked, mask partial", []byte{0x82, 0x85, 1, 2, 3}, ws.Header{}, 0, false},
	{"16-bit length", []byte{0x01, 0xfe, 0x01, 0x00, 9, 9, 9, 9}, ws.Header{OpCode: ws.OpText, Masked: true, Mask: [4]byte{9, 9, 9, 9}, Length: 256}, 8, false},
	{"16-bit length partial", []byte{0x01, 0xfe, 0x01}, ws.Header{}, 0, false},
	{"64-bit length", []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 65536}, 10, false},
	{"64-bit length partial", []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0}, ws.Header{}, 0, false},
	{"64-bit top bit set", []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, ws.Header{}, 0, true},
	{"length 2^62", []byte{0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 1 << 62}, 14, false},
	{"rsv bits", []byte{0xf1, 0x00}, ws.Header{Fin: true, Rsv: 7, OpCode: ws.OpText}, 2, false},
	{"close", []byte{0x88, 0x80, 0, 0, 0, 0}, ws.Header{Fin: true, OpCode: ws.OpClose, Masked: true}, 6, false},
}

func TestParseHeader(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := parseHeader(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if n != tc.n {
				t.Fatalf("n = %d, want %d", n, tc.n)
			}
			if n > 0 && h != tc.want {
				t.Fatalf("header = %+v, want %+v", h, tc.want)
			}
			if n > 0 {
				// gobwas must read the same header from the same bytes.
				wh, err := ws.ReadHeader(bytes.NewReader(tc.in))
				if err != nil || wh != h {
					t.Fatalf("ws.ReadHeader = %+v, %v; ours %+v", wh, err, h)
				}
			}
		})
	}
}

func TestParseHeaderAllocs(t *testing.T) {
	in := []byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}
	if a := testing.AllocsPerRun(100, func() { _, _, _ = parseHeader(in) }); a != 0 {
		t.Fatalf("parseHeader allocates %v times", a)
	}
}

func TestAppendFrameMatchesGobwas(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{'x'}, n)
		var want bytes.Buffer
		if err := ws.WriteFrame(&want, ws.NewFrame(ws.OpBinary, true, p)); err != nil {
			t.Fatal(err)
		}
		if got := appendFrame(nil, true, ws.OpBinary, p); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("len %d: frame differs from ws.WriteFrame", n)
		}
	}
}

func TestAppendClose(t *testing.T) {
	got := appendClose(nil, ws.StatusGoingAway, "idle timeout")
	var want bytes.Buffer
	_ = ws.WriteFrame(&want, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "idle timeout")))
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("close frame % x, want % x", got, want.Bytes())
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []ws.StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	for _, c := range valid {
		if !validCloseCode(c) {
			t.Errorf("%d refused", c)
		}
	}
	for _, c := range invalid {
		if validCloseCode(c) {
			t.Errorf("%d accepted", c)
		}
	}
}

var benchHeader = []byte{0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4}

func BenchmarkFrameHeader(b *testing.B) {
	b.Run("parseHeader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, n, _ := parseHeader(benchHeader); n != 8 {
				b.Fatal(n)
			}
		}
	})
	b.Run("ws.ReadHeader", func(b *testing.B) {
		r := bytes.NewReader(benchHeader)
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(benchHeader)
			if _, err := ws.ReadHeader(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFrameEncode(b *testing.B) {
	payload := bytes.Repeat([]byte{'x'}, 200)
	b.Run("appendFrame", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		b.ReportAllocs()
		for b.Loop() {
			buf = appendFrame(buf[:0], true, ws.OpText, payload)
		}
	})
	b.Run("ws.WriteFrame", func(b *testing.B) {
		var w bytes.Buffer
		w.Grow(512)
		b.ReportAllocs()
		for b.Loop() {
			w.Reset()
			if err := ws.WriteFrame(&w, ws.NewTextFrame(payload)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

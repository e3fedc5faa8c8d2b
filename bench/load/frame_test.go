package load

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseResponseHead(t *testing.T) {
	cases := []struct {
		in     string
		status int
		n      int
		bad    bool
	}{
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi", 101, 56, false},
		{"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n", 401, 48, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs", 0, 0, false},
		{"SSH-2.0-OpenSSH\r\n\r\n", 0, 0, true},
		{"HTTP/1.1 1x1 Huh\r\n\r\n", 0, 0, true},
	}
	for _, c := range cases {
		status, n, err := parseResponseHead([]byte(c.in))
		if (err != nil) != c.bad || status != c.status || n != c.n {
			t.Errorf("%q: status %d n %d err %v; want %d %d bad=%v", c.in, status, n, err, c.status, c.n, c.bad)
		}
	}
}

func TestParseFrameLengths(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'x'}, size)
		var f []byte
		f = append(f, 0x81)
		switch {
		case size < 126:
			f = append(f, byte(size))
		case size <= 0xFFFF:
			f = append(f, 126, byte(size>>8), byte(size))
		default:
			f = append(f, 127, 0, 0, 0, 0, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
		}
		f = append(f, payload...)
		f = append(f, 0x89, 0) // a ping after it
		fr, total, err := parseFrame(f)
		if err != nil || !fr.fin || fr.rsv1 || fr.op != opText || !bytes.Equal(fr.payload, payload) || total != len(f)-2 {
			t.Fatalf("size %d: %+v total %d err %v", size, fr, total, err)
		}
		// Every strict prefix is incomplete, never an error.
		for _, cut := range []int{0, 1, 2, 3, 9, total - 1} {
			if cut < 0 || cut >= total {
				continue
			}
			if _, n, err := parseFrame(f[:cut]); n != 0 || err != nil {
				t.Fatalf("size %d cut %d: total %d err %v", size, cut, n, err)
			}
		}
	}
	if _, _, err := parseFrame([]byte{0x81, 0x80, 1, 2, 3, 4}); err == nil {
		t.Error("masked server frame accepted")
	}
	// RSV1 is the engine's to judge (it needs permessage-deflate agreed);
	// RSV2 and RSV3 never have a meaning.
	if fr, _, err := parseFrame([]byte{0xC1, 0x00}); err != nil || !fr.rsv1 {
		t.Errorf("RSV1 frame: %+v, %v", fr, err)
	}
	for _, b0 := range []byte{0xA1, 0x91} {
		if _, _, err := parseFrame([]byte{b0, 0x00}); err == nil {
			t.Errorf("RSV bits %#x accepted", b0&0x70)
		}
	}
}

func TestAppendClientFrameIsMasked(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	payload := []byte("hello, turnstile")
	f := appendClientFrame(nil, opText, payload, mask)
	if f[0] != 0x81 || f[1] != 0x80|byte(len(payload)) || !bytes.Equal(f[2:6], mask[:]) {
		t.Fatalf("header % x", f[:6])
	}
	for i, c := range f[6:] {
		if c^mask[i&3] != payload[i] {
			t.Fatalf("byte %d not masked", i)
		}
	}
	long := appendClientFrame(nil, opBinary, make([]byte, 300), mask)
	if long[1] != 0x80|126 || long[2] != 1 || long[3] != 44 || len(long) != 4+4+300 {
		t.Fatalf("extended header % x len %d", long[:8], len(long))
	}
}

func TestExtractStamp(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"type":"message","data":{"t":1764350000123456789,"seq":3}}`, 1764350000123456789, true},
		{`{"t": 42}`, 42, true},
		{`{"type":"welcome","user":"maggie","conn":"7"}`, 0, false},
		{`{"t":"x"}`, 0, false},
	}
	for _, c := range cases {
		got, ok := extractStamp([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestUpgradeRequest(t *testing.T) {
	got := string(upgradeRequest("127.0.0.1:8081", "/ws", "AAAAAAAAAAAAAAAAAAAAAA", false))
	want := "GET /ws?ticket=AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
	if got[:len(want)] != want || got[len(got)-4:] != "\r\n\r\n" || strings.Contains(got, "Extensions") {
		t.Fatalf("request %q", got)
	}
	got = string(upgradeRequest("127.0.0.1:8081", "/ws", "AAAAAAAAAAAAAAAAAAAAAA", true))
	offer := "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n\r\n"
	if !strings.HasSuffix(got, offer) {
		t.Fatalf("request with deflate %q", got)
	}
}

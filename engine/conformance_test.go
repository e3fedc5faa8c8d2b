package engine_test

// RFC 6455 conformance of the server side, case by case over raw TCP with
// the engine in echo mode. The cases follow the categories and the case
// semantics of the Autobahn testsuite: each case passes only when the
// server answers with exactly the expected messages and then, where a close
// is expected, sends a close frame with the expected code and ends the TCP
// connection. `go test -run Conformance -v ./engine` prints a table per
// category.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// conformanceMaxMessage is MaxMessageBytes during the suite: above the
// 65536-byte framing cases, as the Autobahn runs raise their limits too.
const conformanceMaxMessage = 128 << 10

// wsCase is one conformance case.
type wsCase struct {
	id   string
	desc string
	// send lists what the client writes, each entry in one write (or
	// chopped, see chop).
	send [][]byte
	// want lists the messages the server must send, in order, before its
	// close frame (or before the client's normal close when close is 0).
	want []message
	// close is the close code the server must send. 0 means the server
	// must keep the connection open: the client then closes with 1000 and
	// expects the echo and a clean TCP close.
	close int
	// orClose is a second acceptable close code (e.g. an empty close may be
	// echoed empty or with 1000).
	orClose int
	// chop, when set, writes the case's bytes in pieces of chop bytes.
	chop int
	// offer is the case's Sec-WebSocket-Extensions offer ("" none);
	// declined says the server must not grant it, else it must answer
	// with deflateGranted exactly.
	offer    string
	declined bool
}

// deflateGranted is the server's one answer to a permessage-deflate offer.
// (gobwas writes it without spaces; the comparison ignores them.)
const deflateGranted = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"

// caseResult is one row of a category's summary table.
type caseResult struct {
	id, desc, want, got string
	pass                bool
}

func echoed(op byte, p []byte) message { return message{op: op, payload: p} }
func echoText(s string) message        { return message{op: opText, payload: []byte(s)} }
func pong(p []byte) message            { return message{op: opPong, payload: p} }

// run plays c on a fresh connection and reports what happened.
func (c wsCase) run(t *testing.T, s *testServer, chop int) caseResult {
	t.Helper()
	res := caseResult{id: c.id, desc: c.desc, want: c.describeWant()}
	cl := rawDial(t, s.addr)
	if chop == 0 {
		chop = c.chop
	}
	cl.chop = chop
	_, ext := cl.handshakeOffer(s.issue(t, "conformance"), c.offer)
	if want := map[bool]string{true: deflateGranted, false: ""}[c.offer != "" && !c.declined]; strings.ReplaceAll(ext, " ", "") != want {
		res.got = fmt.Sprintf("Sec-WebSocket-Extensions %q", ext)
		t.Errorf("%s: Sec-WebSocket-Extensions %q, want %q", c.id, ext, want)
		return res
	}
	for _, b := range c.send {
		if len(b) > 0 && b[0]&0x0F == opClose {
			cl.wroteClose = true
		}
		if err := cl.send(b); err != nil {
			// A server that closes early may make later writes fail; the
			// close frame it sent is still read below.
			break
		}
	}

	var got []message
	var end closeResult
	if c.close == 0 {
		for range c.want {
			m, err := cl.readMessage()
			if err != nil {
				res.got = fmt.Sprintf("after %d messages: %v", len(got), err)
				t.Errorf("%s: %s", c.id, res.got)
				return res
			}
			if m.op == opClose {
				end.code = frame{payload: m.payload}.closeCode()
				res.got = fmt.Sprintf("%v then close %d", got, end.code)
				t.Errorf("%s: server closed: %s", c.id, res.got)
				return res
			}
			got = append(got, m)
		}
		end = cl.closeNormally(closeNormal)
		got = append(got, end.extra...)
		res.pass = messagesEqual(got, c.want) && end.code == closeNormal && end.tcp == "EOF"
	} else {
		end = cl.awaitClose()
		got = end.extra
		codeOK := end.code == c.close || (c.orClose != 0 && end.code == c.orClose)
		// After a protocol error the server may have unread bytes of ours,
		// in which case the kernel ends TCP with a reset: still a close by
		// the server, which is what the case requires.
		tcpOK := end.tcp == "EOF" || end.tcp == "reset"
		res.pass = messagesEqual(got, c.want) && codeOK && tcpOK
	}
	res.got = describeGot(got, end)
	if !res.pass {
		t.Errorf("%s %s:\n  want %s\n  got  %s", c.id, c.desc, res.want, res.got)
	}
	return res
}

func (c wsCase) describeWant() string {
	var b strings.Builder
	if len(c.want) > 0 {
		fmt.Fprintf(&b, "%d msg, ", len(c.want))
	}
	switch {
	case c.close == 0:
		b.WriteString("open")
	case c.orClose != 0:
		fmt.Fprintf(&b, "close %d|%d", c.close, c.orClose)
	default:
		fmt.Fprintf(&b, "close %d", c.close)
	}
	return b.String()
}

func describeGot(got []message, end closeResult) string {
	var b strings.Builder
	if len(got) > 0 {
		fmt.Fprintf(&b, "%d msg, ", len(got))
	}
	fmt.Fprintf(&b, "close %d, tcp %s", end.code, end.tcp)
	return b.String()
}

func messagesEqual(a, b []message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].op != b[i].op || !bytes.Equal(a[i].payload, b[i].payload) {
			return false
		}
	}
	return true
}

// runCategory plays every case of a category against s, each as a subtest,
// and logs the category's summary table.
func runCategory(t *testing.T, s *testServer, name string, cases []wsCase, chop int) {
	t.Helper()
	var results []caseResult
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			results = append(results, c.run(t, s, chop))
		})
	}
	logTable(t, name, results)
}

func logTable(t *testing.T, name string, results []caseResult) {
	t.Helper()
	var b strings.Builder
	passed := 0
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "case\tresult\twant\tgot\tdescription\n")
	for _, r := range results {
		verdict := "FAIL"
		if r.pass {
			verdict = "pass"
			passed++
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.id, verdict, r.want, r.got, r.desc)
	}
	w.Flush()
	t.Logf("category %s: %d/%d passed\n%s", name, passed, len(results), b.String())
}

// conformanceServer starts the echo server the suite runs against.
func conformanceServer(t *testing.T) *testServer {
	return startServer(t, echoConfig(conformanceMaxMessage))
}

// ---------------------------------------------------------------------------
// Case tables
// ---------------------------------------------------------------------------

var framingSizes = []int{0, 125, 126, 127, 128, 65535, 65536}

// pattern returns n bytes of printable ASCII that differ from position to
// position, so a lost or shifted byte is seen.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// binaryPattern returns n bytes covering every byte value.
func binaryPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func framingCases() []wsCase {
	var cases []wsCase
	for i, n := range framingSizes {
		p := pattern(n)
		cases = append(cases, wsCase{
			id: fmt.Sprintf("1.1.%d", i+1), desc: fmt.Sprintf("text, %d bytes", n),
			send: [][]byte{clientFrame(true, 0, opText, p)},
			want: []message{echoed(opText, p)},
		})
	}
	cases = append(cases, wsCase{
		id: "1.1.8", desc: "text, 65535 bytes, written in chops of 997",
		send: [][]byte{clientFrame(true, 0, opText, pattern(65535))},
		want: []message{echoed(opText, pattern(65535))}, chop: 997,
	})
	for i, n := range framingSizes {
		p := binaryPattern(n)
		cases = append(cases, wsCase{
			id: fmt.Sprintf("1.2.%d", i+1), desc: fmt.Sprintf("binary, %d bytes", n),
			send: [][]byte{clientFrame(true, 0, opBinary, p)},
			want: []message{echoed(opBinary, p)},
		})
	}
	cases = append(cases, wsCase{
		id: "1.2.8", desc: "binary, 65535 bytes, written in chops of 997",
		send: [][]byte{clientFrame(true, 0, opBinary, binaryPattern(65535))},
		want: []message{echoed(opBinary, binaryPattern(65535))}, chop: 997,
	})
	return cases
}

func pingPongCases() []wsCase {
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	var tenPings [][]byte
	var tenPongs []message
	for i := range 10 {
		p := []byte(fmt.Sprintf("payload-%d", i))
		tenPings = append(tenPings, pingFrame(p))
		tenPongs = append(tenPongs, pong(p))
	}
	return []wsCase{
		{id: "2.1", desc: "ping, empty payload",
			send: [][]byte{pingFrame(nil)}, want: []message{pong([]byte{})}},
		{id: "2.2", desc: "ping, text payload",
			send: [][]byte{pingFrame([]byte("Hello, world!"))}, want: []message{pong([]byte("Hello, world!"))}},
		{id: "2.3", desc: "ping, binary payload",
			send: [][]byte{pingFrame(bin)}, want: []message{pong(bin)}},
		{id: "2.4", desc: "ping, 125-byte payload",
			send: [][]byte{pingFrame(binaryPattern(125))}, want: []message{pong(binaryPattern(125))}},
		{id: "2.5", desc: "ping, 126-byte payload (control frames are at most 125)",
			send: [][]byte{pingFrame(binaryPattern(126))}, close: closeProtocol},
		{id: "2.6", desc: "ping, 125-byte payload, written byte by byte",
			send: [][]byte{pingFrame(binaryPattern(125))}, want: []message{pong(binaryPattern(125))}, chop: 1},
		{id: "2.7", desc: "unsolicited pong, empty: ignored",
			send: [][]byte{pongFrame(nil)}},
		{id: "2.8", desc: "unsolicited pong with payload: ignored",
			send: [][]byte{pongFrame([]byte("unsolicited pong payload"))}},
		{id: "2.9", desc: "unsolicited pong, then ping: one pong",
			send: [][]byte{pongFrame([]byte("unsolicited")), pingFrame([]byte("solicited"))},
			want: []message{pong([]byte("solicited"))}},
		{id: "2.10", desc: "10 pings in one write: 10 pongs in order",
			send: [][]byte{bytes.Join(tenPings, nil)}, want: tenPongs},
		{id: "2.11", desc: "10 pings, byte by byte: 10 pongs in order",
			send: tenPings, want: tenPongs, chop: 1},
	}
}

func reservedBitsCases() []wsCase {
	return []wsCase{
		{id: "3.1", desc: "text with RSV1 (no extension negotiated)",
			send: [][]byte{clientFrame(true, rsv1, opText, []byte("Hello"))}, close: closeProtocol},
		{id: "3.2", desc: "text, then text with RSV2",
			send:  [][]byte{textFrame("Hello"), clientFrame(true, rsv2, opText, []byte("Hello"))},
			want:  []message{echoText("Hello")},
			close: closeProtocol},
		{id: "3.3", desc: "text, text with RSV1|RSV2, ping: no pong",
			send:  [][]byte{textFrame("Hello"), clientFrame(true, rsv1|rsv2, opText, []byte("Hello")), pingFrame(nil)},
			want:  []message{echoText("Hello")},
			close: closeProtocol},
		{id: "3.4", desc: "as 3.3, byte by byte",
			send:  [][]byte{textFrame("Hello"), clientFrame(true, rsv1|rsv2, opText, []byte("Hello")), pingFrame(nil)},
			want:  []message{echoText("Hello")},
			close: closeProtocol, chop: 1},
		{id: "3.5", desc: "binary with RSV1|RSV3",
			send: [][]byte{clientFrame(true, rsv1|rsv3, opBinary, []byte{1, 2, 3})}, close: closeProtocol},
		{id: "3.6", desc: "ping with RSV2|RSV3",
			send: [][]byte{clientFrame(true, rsv2|rsv3, opPing, []byte("x"))}, close: closeProtocol},
		{id: "3.7", desc: "close with all RSV bits",
			send: [][]byte{clientFrame(true, rsv1|rsv2|rsv3, opClose, closePayload(closeNormal, ""))}, close: closeProtocol},
		{id: "3.8", desc: "continuation with RSV3 inside a fragmented message",
			send: [][]byte{frag(opText, "frag1"), clientFrame(true, rsv3, opCont, []byte("frag2"))}, close: closeProtocol},
	}
}

func reservedOpcodeCases() []wsCase {
	var cases []wsCase
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("4.1.%d", i+1), desc: fmt.Sprintf("non-control opcode %d, text then it then ping", op),
			send:  [][]byte{textFrame("Hello"), clientFrame(true, 0, op, []byte("reserved")), pingFrame(nil)},
			want:  []message{echoText("Hello")},
			close: closeProtocol,
		})
	}
	for i, op := range []byte{0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("4.2.%d", i+1), desc: fmt.Sprintf("control opcode %d, text then it then ping", op),
			send:  [][]byte{textFrame("Hello"), clientFrame(true, 0, op, []byte("reserved")), pingFrame(nil)},
			want:  []message{echoText("Hello")},
			close: closeProtocol,
		})
	}
	cases = append(cases,
		wsCase{id: "4.3.1", desc: "opcode 5 alone, empty payload",
			send: [][]byte{clientFrame(true, 0, 5, nil)}, close: closeProtocol},
		wsCase{id: "4.3.2", desc: "opcode 0xF alone, byte by byte",
			send: [][]byte{clientFrame(true, 0, 0xF, []byte("x"))}, close: closeProtocol, chop: 1},
	)
	return cases
}

func fragmentationCases() []wsCase {
	twoFrags := [][]byte{frag(opText, "fragment1"), cont(true, "fragment2")}
	var fivePings [][]byte
	var fivePongs []message
	whole := ""
	for i := range 5 {
		p := fmt.Sprintf("frag%d", i)
		whole += p
		op := opCont
		if i == 0 {
			op = opText
		}
		fivePings = append(fivePings, clientFrame(i == 4, 0, op, []byte(p)))
		if i < 4 {
			fivePings = append(fivePings, pingFrame([]byte(fmt.Sprintf("ping%d", i))))
			fivePongs = append(fivePongs, pong([]byte(fmt.Sprintf("ping%d", i))))
		}
	}
	fivePongs = append(fivePongs, echoText(whole))
	return []wsCase{
		{id: "5.1", desc: "ping in 2 fragments",
			send: [][]byte{clientFrame(false, 0, opPing, []byte("frag1")), cont(true, "frag2")}, close: closeProtocol},
		{id: "5.2", desc: "pong in 2 fragments",
			send: [][]byte{clientFrame(false, 0, opPong, []byte("frag1")), cont(true, "frag2")}, close: closeProtocol},
		{id: "5.3", desc: "text in 2 fragments",
			send: twoFrags, want: []message{echoText("fragment1fragment2")}},
		{id: "5.4", desc: "text in 2 fragments, byte by byte",
			send: twoFrags, want: []message{echoText("fragment1fragment2")}, chop: 1},
		{id: "5.5", desc: "binary in 2 fragments",
			send: [][]byte{clientFrame(false, 0, opBinary, []byte{0, 1}), clientFrame(true, 0, opCont, []byte{2, 0xff})},
			want: []message{echoed(opBinary, []byte{0, 1, 2, 0xff})}},
		{id: "5.6", desc: "text in 2 fragments with a ping between",
			send: [][]byte{frag(opText, "fragment1"), pingFrame([]byte("ping")), cont(true, "fragment2")},
			want: []message{pong([]byte("ping")), echoText("fragment1fragment2")}},
		{id: "5.7", desc: "as 5.6, byte by byte",
			send: [][]byte{frag(opText, "fragment1"), pingFrame([]byte("ping")), cont(true, "fragment2")},
			want: []message{pong([]byte("ping")), echoText("fragment1fragment2")}, chop: 1},
		{id: "5.8", desc: "text in 2 fragments with an unsolicited pong between",
			send: [][]byte{frag(opText, "fragment1"), pongFrame([]byte("pong")), cont(true, "fragment2")},
			want: []message{echoText("fragment1fragment2")}},
		{id: "5.9", desc: "continuation (FIN) with nothing to continue",
			send: [][]byte{cont(true, "non-continuation payload"), textFrame("Hello")}, close: closeProtocol},
		{id: "5.10", desc: "as 5.9, byte by byte",
			send: [][]byte{cont(true, "non-continuation payload"), textFrame("Hello")}, close: closeProtocol, chop: 1},
		{id: "5.11", desc: "continuation (no FIN) with nothing to continue",
			send: [][]byte{cont(false, "non-continuation payload"), textFrame("Hello")}, close: closeProtocol},
		{id: "5.12", desc: "fragmented text, then a second FIN continuation",
			send:  [][]byte{frag(opText, "f1"), cont(true, "f2"), cont(true, "f3")},
			want:  []message{echoText("f1f2")},
			close: closeProtocol},
		{id: "5.13", desc: "fragmented text, then continuations of a finished message",
			send:  [][]byte{frag(opText, "f1"), cont(true, "f2"), cont(false, "f3"), cont(true, "f4")},
			want:  []message{echoText("f1f2")},
			close: closeProtocol},
		{id: "5.14", desc: "new text message (no FIN) inside a fragmented one",
			send: [][]byte{frag(opText, "a"), frag(opText, "b"), cont(true, "c")}, close: closeProtocol},
		{id: "5.15", desc: "new text message (FIN) inside a fragmented one",
			send: [][]byte{frag(opText, "a"), textFrame("b"), cont(true, "c")}, close: closeProtocol},
		{id: "5.16", desc: "new binary message inside a fragmented text one",
			send: [][]byte{frag(opText, "a"), binFrame([]byte("b"))}, close: closeProtocol},
		{id: "5.17", desc: "text in 5 fragments with a ping between each",
			send: fivePings, want: fivePongs},
		{id: "5.18", desc: "as 5.17, byte by byte",
			send: fivePings, want: fivePongs, chop: 1},
		{id: "5.19", desc: "empty fragments: text \"\", cont \"\", cont FIN \"\"",
			send: [][]byte{frag(opText, ""), cont(false, ""), cont(true, "")}, want: []message{echoText("")}},
		{id: "5.20", desc: "two fragmented messages back to back",
			send: [][]byte{frag(opText, "a"), cont(true, "b"), clientFrame(false, 0, opBinary, []byte("c")), clientFrame(true, 0, opCont, []byte("d"))},
			want: []message{echoText("ab"), echoed(opBinary, []byte("cd"))}},
	}
}

// utf8Valid are texts every UTF-8 check must accept, boundaries included.
var utf8Valid = []struct{ name, text string }{
	{"empty", ""},
	{"Hello-µ@ßöäüàá-UTF-8!!", "Hello-µ@ßöäüàá-UTF-8!!"},
	{"κόσμε", "κόσμε"},
	{"U+0000", "\x00"},
	{"U+007F", "\x7f"},
	{"U+0080", "\u0080"},
	{"U+07FF", "\u07ff"},
	{"U+0800", "\u0800"},
	{"U+D7FF", "\ud7ff"},
	{"U+E000", "\ue000"},
	{"U+FFFD", "\ufffd"},
	{"U+FFFF", "\uffff"},
	{"U+10000", "\U00010000"},
	{"U+10FFFF", "\U0010ffff"},
	{"mixed 1-4 bytes", "a\u00e9\u20ac\U0001f600z"},
}

// utf8Invalid are byte strings every UTF-8 check must refuse.
var utf8Invalid = []struct{ name, text string }{
	{"lone continuation 0x80", "\x80"},
	{"lone continuation 0xBF", "\xbf"},
	{"κόσμε + lone continuation", "κόσμε\x80"},
	{"overlong NUL C0 80", "\xc0\x80"},
	{"overlong C1 BF", "\xc1\xbf"},
	{"overlong 3-byte E0 80 AF", "\xe0\x80\xaf"},
	{"overlong 4-byte F0 80 80 AF", "\xf0\x80\x80\xaf"},
	{"surrogate U+D800", "\xed\xa0\x80"},
	{"surrogate U+DFFF", "\xed\xbf\xbf"},
	{"surrogate pair", "\xed\xa0\x80\xed\xb0\x80"},
	{"above U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80"},
	{"F5 lead byte", "\xf5\x80\x80\x80"},
	{"FE", "\xfe"},
	{"FF", "\xff"},
	{"truncated 2-byte at end", "κόσμ\xce"},
	{"truncated 3-byte at end", "a\xe2\x82"},
	{"truncated 4-byte at end", "a\xf0\x9f\x98"},
	{"lead byte then ASCII", "\xce\x41"},
}

func utf8Cases() []wsCase {
	var cases []wsCase
	for i, v := range utf8Valid {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("6.1.%d", i+1), desc: "valid " + v.name,
			send: [][]byte{textFrame(v.text)}, want: []message{echoText(v.text)},
		})
	}
	// Every valid text split into one-byte fragments: code points are cut
	// at every position, and a partial sequence at the end of a fragment
	// must not be refused.
	for i, v := range utf8Valid {
		if len(v.text) < 2 {
			continue
		}
		cases = append(cases, wsCase{
			id: fmt.Sprintf("6.2.%d", i+1), desc: "valid " + v.name + ", one byte per fragment",
			send: oneBytePerFragment(opText, []byte(v.text)), want: []message{echoText(v.text)},
		})
	}
	n := 0
	for _, v := range utf8Invalid {
		if utf8.ValidString(v.text) {
			continue
		}
		n++
		cases = append(cases, wsCase{
			id: fmt.Sprintf("6.3.%d", n), desc: "invalid " + v.name,
			send: [][]byte{textFrame(v.text)}, close: closeInvalidData,
		})
		n++
		cases = append(cases, wsCase{
			id: fmt.Sprintf("6.3.%d", n), desc: "invalid " + v.name + ", one byte per fragment",
			send: oneBytePerFragment(opText, []byte(v.text)), close: closeInvalidData,
		})
	}
	cases = append(cases,
		// Fail fast: the message is never finished; the server must refuse
		// it on the first fragment that cannot be valid.
		wsCase{id: "6.4.1", desc: "fail fast: first fragment invalid (surrogate), message never finished",
			send: [][]byte{frag(opText, "κόσμε\xed\xa0\x80edited")}, close: closeInvalidData},
		wsCase{id: "6.4.2", desc: "fail fast: valid first fragment ends in F4, second starts 90 (> U+10FFFF), never finished",
			send: [][]byte{frag(opText, "κόσμε\xf4"), cont(false, "\x90\x80\x80")}, close: closeInvalidData},
		// Autobahn 6.4.3 and 6.4.4: one frame whose payload arrives in
		// chops; the invalid sequence comes before the frame is whole, and
		// the rest never comes. Strict servers fail at once.
		wsCase{id: "6.4.3", desc: "fail fast inside one frame: valid chop, chop with a surrogate, the rest never sent",
			send: partialFrame(opText, []byte("κόσμε\xed\xa0\x80edited"), 11, 14), close: closeInvalidData},
		wsCase{id: "6.4.4", desc: "fail fast inside one frame: the chop ends in F4, the next byte is 90 (> U+10FFFF), the rest never sent",
			send: partialFrame(opText, []byte("κόσμε\xf4\x90\x80\x80edited"), 11, 12), close: closeInvalidData},
		wsCase{id: "6.4.5", desc: "fail fast: invalid byte in the middle fragment of three, never finished",
			send: [][]byte{frag(opText, "good"), cont(false, "b\xffd")}, close: closeInvalidData},
		wsCase{id: "6.4.6", desc: "fail fast, byte by byte",
			send: [][]byte{frag(opText, "κόσμε"), cont(false, "\xc0\xaf")}, close: closeInvalidData, chop: 1},
		wsCase{id: "6.4.7", desc: "fail fast inside a continuation frame, the rest never sent",
			send: append([][]byte{frag(opText, "good")}, partialFrame(opCont, []byte("ok\xc0\xafmore"), 4)...), close: closeInvalidData},
		wsCase{id: "6.4.9", desc: "fail fast inside a 60 KiB frame: invalid byte at 15 KiB, 32 KiB sent in two chops, the rest never sent",
			send: partialFrame(opText, append(append(pattern(15<<10), 0xff), pattern(45<<10)...), 16<<10, 32<<10), close: closeInvalidData},
		wsCase{id: "6.4.8", desc: "a valid frame sent in chops across a code point is echoed whole",
			send: partialFrame(opText, []byte("κόσμε-κόσμε"), 1, 2, 3, 7, 14, len("κόσμε-κόσμε")), want: []message{echoText("κόσμε-κόσμε")}},
		wsCase{id: "6.5.1", desc: "invalid UTF-8 in a binary message is data",
			send: [][]byte{binFrame([]byte("\xff\xfe\xed\xa0\x80"))}, want: []message{echoed(opBinary, []byte("\xff\xfe\xed\xa0\x80"))}},
		wsCase{id: "6.5.2", desc: "text valid only as a whole, in 2 fragments split inside κ",
			send: [][]byte{frag(opText, "\xce"), cont(true, "\xba")}, want: []message{echoText("κ")}},
		wsCase{id: "6.5.3", desc: "valid text then invalid text: first echoed",
			send:  [][]byte{textFrame("κόσμε"), textFrame("\xed\xa0\x80")},
			want:  []message{echoText("κόσμε")},
			close: closeInvalidData},
		wsCase{id: "6.5.4", desc: "a code point unfinished when the message ends across fragments",
			send: [][]byte{frag(opText, "ok\xe2"), cont(true, "\x82")}, close: closeInvalidData},
	)
	return cases
}

// partialFrame encodes one masked, final frame of payload and returns it cut
// into writes that end after payload offsets cuts (ascending); the bytes
// after the last cut are never sent.
func partialFrame(op byte, payload []byte, cuts ...int) [][]byte {
	f := clientFrame(true, 0, op, payload)
	hl := len(f) - len(payload)
	var out [][]byte
	prev := 0
	for i, cut := range cuts {
		start := hl + prev
		if i == 0 {
			start = 0
		}
		out = append(out, f[start:hl+cut])
		prev = cut
	}
	return out
}

// oneBytePerFragment splits p into fragments of one byte each (an empty p
// gives one empty frame).
func oneBytePerFragment(op byte, p []byte) [][]byte {
	return fragments(op, p, 1)
}

// fragments splits p into fragments of size bytes (the last may be shorter).
func fragments(op byte, p []byte, size int) [][]byte {
	if len(p) == 0 {
		return [][]byte{clientFrame(true, 0, op, nil)}
	}
	var out [][]byte
	for i := 0; i < len(p); i += size {
		end := min(i+size, len(p))
		o := opCont
		if i == 0 {
			o = op
		}
		out = append(out, clientFrame(end == len(p), 0, o, p[i:end]))
	}
	return out
}

func closeCases() []wsCase {
	reason123 := strings.Repeat("*", 123)
	reason124 := strings.Repeat("*", 124)
	cases := []wsCase{
		{id: "7.1.1", desc: "text, then close 1000",
			send: [][]byte{textFrame("Hello World!"), closeCode(closeNormal)},
			want: []message{echoText("Hello World!")}, close: closeNormal},
		{id: "7.1.2", desc: "close twice: the second is ignored",
			send: [][]byte{closeCode(closeNormal), closeCode(closeNormal)}, close: closeNormal},
		{id: "7.1.3", desc: "close, then ping: no pong",
			send: [][]byte{closeCode(closeNormal), pingFrame([]byte("Hello World!"))}, close: closeNormal},
		{id: "7.1.4", desc: "close, then text: not echoed",
			send: [][]byte{closeCode(closeNormal), textFrame("Hello World!")}, close: closeNormal},
		{id: "7.1.5", desc: "fragment, close, final fragment: nothing echoed",
			send: [][]byte{frag(opText, "fragment1"), closeCode(closeNormal), cont(true, "fragment2")}, close: closeNormal},
		{id: "7.1.6", desc: "close, then data, in one write, byte by byte",
			send: [][]byte{closeCode(closeNormal), textFrame("after close")}, close: closeNormal, chop: 1},
		{id: "7.3.1", desc: "close with empty payload",
			send: [][]byte{closeFrame(nil)}, close: closeNormal, orClose: closeNoStatus},
		{id: "7.3.2", desc: "close with a 1-byte payload",
			send: [][]byte{closeFrame([]byte{0x03})}, close: closeProtocol},
		{id: "7.3.3", desc: "close 1000, no reason",
			send: [][]byte{closeCode(closeNormal)}, close: closeNormal},
		{id: "7.3.4", desc: "close 1000 with a reason",
			send: [][]byte{closeFrame(closePayload(closeNormal, "Hello World!"))}, close: closeNormal},
		{id: "7.3.5", desc: "close 1000 with a 123-byte reason (125 payload)",
			send: [][]byte{closeFrame(closePayload(closeNormal, reason123))}, close: closeNormal},
		{id: "7.3.6", desc: "close 1000 with a 124-byte reason (126 payload)",
			send: [][]byte{closeFrame(closePayload(closeNormal, reason124))}, close: closeProtocol},
		{id: "7.5.1", desc: "close 1000 with an invalid UTF-8 reason",
			send: [][]byte{closeFrame(closePayload(closeNormal, "κόσμε\xed\xa0\x80edited"))}, close: closeInvalidData},
		{id: "7.5.2", desc: "close 1000 with a reason cut inside a code point",
			send: [][]byte{closeFrame(closePayload(closeNormal, "κ\xce"))}, close: closeInvalidData},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("7.7.%d", i+1), desc: fmt.Sprintf("valid close code %d is echoed", code),
			send: [][]byte{closeCode(code)}, close: code,
		})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("7.9.%d", i+1), desc: fmt.Sprintf("invalid close code %d", code),
			send: [][]byte{closeCode(code)}, close: closeProtocol,
		})
	}
	return cases
}

// limitCases scale Autobahn's category 9 to the configured maximum m.
func limitCases(m int) []wsCase {
	cases := []wsCase{
		{id: "9.1.1", desc: fmt.Sprintf("text of max (%d) bytes", m),
			send: [][]byte{clientFrame(true, 0, opText, pattern(m))}, want: []message{echoed(opText, pattern(m))}},
		{id: "9.1.2", desc: "binary of max bytes",
			send: [][]byte{clientFrame(true, 0, opBinary, binaryPattern(m))}, want: []message{echoed(opBinary, binaryPattern(m))}},
		{id: "9.1.3", desc: "text of max+1 bytes",
			send: [][]byte{clientFrame(true, 0, opText, pattern(m+1))}, close: closeTooBig},
		{id: "9.1.4", desc: "binary of max+1 bytes",
			send: [][]byte{clientFrame(true, 0, opBinary, binaryPattern(m+1))}, close: closeTooBig},
		{id: "9.1.5", desc: "header declaring max+1 bytes, payload never sent (decided from the length)",
			send: [][]byte{frameHeader(true, opBinary, uint64(m+1))}, close: closeTooBig},
		{id: "9.1.6", desc: "header declaring 2^62 bytes, payload never sent",
			send: [][]byte{frameHeader(true, opText, 1<<62)}, close: closeTooBig},
		{id: "9.1.7", desc: "header declaring 2^63 (MSB set: invalid length)",
			send: [][]byte{frameHeader(true, opBinary, 1<<63)}, close: closeProtocol, orClose: closeTooBig},
		{id: "9.2.1", desc: "text of max bytes in 4 fragments",
			send: fragments(opText, pattern(m), m/4), want: []message{echoed(opText, pattern(m))}},
		{id: "9.2.2", desc: "text of max+1 bytes in 4+1 fragments",
			send: fragments(opText, pattern(m+1), m/4), close: closeTooBig},
		{id: "9.2.3", desc: "fragments within max, then a continuation header declaring past it, never sent",
			send:  [][]byte{clientFrame(false, 0, opBinary, binaryPattern(m/2)), frameHeader(true, opCont, uint64(m/2+1))},
			close: closeTooBig},
		{id: "9.2.5", desc: "a fragment, then a continuation declaring 2^63-1 bytes (the running total overflows int64)",
			send:  [][]byte{clientFrame(false, 0, opBinary, binaryPattern(1)), frameHeader(true, opCont, 1<<63-1)},
			close: closeTooBig},
		{id: "9.2.4", desc: "max-byte messages back to back, each under the limit on its own",
			send: [][]byte{clientFrame(true, 0, opBinary, binaryPattern(m)), clientFrame(true, 0, opBinary, binaryPattern(m))},
			want: []message{echoed(opBinary, binaryPattern(m)), echoed(opBinary, binaryPattern(m))}},
	}
	for i, size := range []int{64, 256, 1024, 4096, 16384, 65536} {
		if size > m {
			break
		}
		cases = append(cases, wsCase{
			id: fmt.Sprintf("9.4.%d", i+1), desc: fmt.Sprintf("binary of max bytes in frames of %d", size),
			send: fragments(opBinary, binaryPattern(m), size), want: []message{echoed(opBinary, binaryPattern(m))},
		})
	}
	for i, chop := range []int{64, 1024, 8192} {
		cases = append(cases, wsCase{
			id: fmt.Sprintf("9.5.%d", i+1), desc: fmt.Sprintf("text of max bytes written in chops of %d", chop),
			send: [][]byte{clientFrame(true, 0, opText, pattern(m))}, want: []message{echoed(opText, pattern(m))}, chop: chop,
		})
	}
	var many [][]byte
	var manyEchoes []message
	for i := range 1000 {
		p := []byte(fmt.Sprintf("message %04d", i))
		many = append(many, textFrame(string(p)))
		manyEchoes = append(manyEchoes, echoText(string(p)))
	}
	cases = append(cases, wsCase{
		id: "9.7.1", desc: "1000 small text messages in one write",
		send: [][]byte{bytes.Join(many, nil)}, want: manyEchoes,
	})
	return cases
}

// autoFragmentationCases: large messages the client sends in many pieces.
func autoFragmentationCases(m int) []wsCase {
	// Multi-byte text whose code points fall across every fragment edge.
	text := []byte(strings.Repeat("aé€😀", m/10/10))
	var pingsBetween [][]byte
	var pongs []message
	for i, f := range fragments(opText, pattern(100*64), 64) {
		pingsBetween = append(pingsBetween, f)
		if i < 99 {
			p := []byte(fmt.Sprintf("%d", i))
			pingsBetween = append(pingsBetween, pingFrame(p))
			pongs = append(pongs, pong(p))
		}
	}
	pongs = append(pongs, echoed(opText, pattern(100*64)))
	return []wsCase{
		{id: "10.1.1", desc: "binary of 65536 bytes in 1-byte fragments",
			send: [][]byte{bytes.Join(fragments(opBinary, binaryPattern(65536), 1), nil)},
			want: []message{echoed(opBinary, binaryPattern(65536))}},
		{id: "10.1.2", desc: fmt.Sprintf("text of max (%d) bytes in 1300-byte fragments", m),
			send: [][]byte{bytes.Join(fragments(opText, pattern(m), 1300), nil)},
			want: []message{echoed(opText, pattern(m))}},
		{id: "10.1.3", desc: fmt.Sprintf("multi-byte text (%d bytes) in 1-byte fragments", len(text)),
			send: [][]byte{bytes.Join(fragments(opText, text, 1), nil)},
			want: []message{echoed(opText, text)}},
		{id: "10.1.4", desc: fmt.Sprintf("multi-byte text (%d bytes) in 7-byte fragments", len(text)),
			send: [][]byte{bytes.Join(fragments(opText, text, 7), nil)},
			want: []message{echoed(opText, text)}},
		{id: "10.1.5", desc: "text in 100 fragments with a ping after each",
			send: [][]byte{bytes.Join(pingsBetween, nil)}, want: pongs},
		{id: "10.1.6", desc: "binary of max bytes in 1-byte fragments, plus one more: 1009",
			send: [][]byte{bytes.Join(fragments(opBinary, binaryPattern(m+1), 1), nil)}, close: closeTooBig},
	}
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

func TestConformance(t *testing.T) {
	s := conformanceServer(t)
	categories := []struct {
		name  string
		cases []wsCase
	}{
		{"1 framing", framingCases()},
		{"2 ping/pong", pingPongCases()},
		{"3 reserved bits", reservedBitsCases()},
		{"4 reserved opcodes", reservedOpcodeCases()},
		{"5 fragmentation", fragmentationCases()},
		{"6 UTF-8", utf8Cases()},
		{"7 close", closeCases()},
		{"9 limits", limitCases(conformanceMaxMessage)},
		{"10 auto-fragmentation", autoFragmentationCases(conformanceMaxMessage)},
	}
	for _, c := range categories {
		t.Run(strings.Fields(c.name)[0], func(t *testing.T) {
			runCategory(t, s, c.name, c.cases, 0)
		})
	}
}

// TestConformanceChopped replays the categories of small frames with every
// byte written on its own, the handshake included: a server that assumes a
// frame or a request arrives whole fails here.
func TestConformanceChopped(t *testing.T) {
	s := conformanceServer(t)
	categories := []struct {
		name  string
		cases []wsCase
	}{
		{"2 ping/pong", pingPongCases()},
		{"3 reserved bits", reservedBitsCases()},
		{"4 reserved opcodes", reservedOpcodeCases()},
		{"5 fragmentation", fragmentationCases()},
		{"6 UTF-8", utf8Cases()},
		{"7 close", closeCases()},
	}
	for _, c := range categories {
		t.Run(strings.Fields(c.name)[0], func(t *testing.T) {
			runCategory(t, s, c.name+" (byte by byte)", c.cases, 1)
		})
	}
}

// TestPipelinedWithHandshake sends frames in the same write as the upgrade
// request: the server must not lose them to read-ahead while parsing the
// request (DESIGN §3).
func TestPipelinedWithHandshake(t *testing.T) {
	s := conformanceServer(t)
	cases := []struct {
		name  string
		after [][]byte
		want  []message
		close int
	}{
		{"text", [][]byte{textFrame("pipelined")}, []message{echoText("pipelined")}, 0},
		{"ping then text", [][]byte{pingFrame([]byte("p")), textFrame("t")}, []message{pong([]byte("p")), echoText("t")}, 0},
		{"fragmented text", [][]byte{frag(opText, "a"), cont(true, "b")}, []message{echoText("ab")}, 0},
		{"4 KiB binary (past a bufio read-ahead)", [][]byte{binFrame(binaryPattern(4096))}, []message{echoed(opBinary, binaryPattern(4096))}, 0},
		{"close", [][]byte{closeCode(closeNormal)}, nil, closeNormal},
		{"protocol error", [][]byte{unmaskedFrame(true, opText, []byte("x"))}, nil, closeProtocol},
	}
	var results []caseResult
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, s.addr)
			c.handshake(s.issue(t, "pipelined"), tc.after...)
			res := caseResult{id: tc.name, desc: "frames in the handshake's write"}
			var got []message
			var end closeResult
			if tc.close == 0 {
				for range tc.want {
					m, err := c.readMessage()
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					got = append(got, m)
				}
				end = c.closeNormally(closeNormal)
				res.pass = messagesEqual(got, tc.want) && end.code == closeNormal && end.tcp == "EOF"
			} else {
				if tc.close == closeNormal {
					c.wroteClose = true
				}
				end = c.awaitClose()
				got = end.extra
				res.pass = len(got) == 0 && end.code == tc.close && (end.tcp == "EOF" || end.tcp == "reset")
			}
			res.want = wsCase{want: tc.want, close: tc.close}.describeWant()
			res.got = describeGot(got, end)
			if !res.pass {
				t.Errorf("want %s, got %s (%v)", res.want, res.got, got)
			}
			results = append(results, res)
		})
	}
	logTable(t, "pipelined with the handshake", results)
}

// TestChoppedHandshakeAndFrames writes the upgrade request and a frame
// split at every byte offset in two writes, then byte by byte.
func TestChoppedHandshakeAndFrames(t *testing.T) {
	s := conformanceServer(t)
	n := len(upgradeRequest("/ws", s.issue(t, "unused"))) + len(textFrame("chopped"))
	for cut := 1; cut < n; cut++ {
		c := rawDial(t, s.addr)
		b := append(upgradeRequest("/ws", s.issue(t, "chopped")), textFrame("chopped")...)
		c.send(b[:cut])
		time.Sleep(time.Millisecond)
		c.send(b[cut:])
		checkUpgradeAndEcho(t, c, "chopped", fmt.Sprintf("cut at %d", cut))
	}
	c := rawDial(t, s.addr)
	c.chop = 1
	c.send(append(upgradeRequest("/ws", s.issue(t, "chopped")), textFrame("byte by byte")...))
	checkUpgradeAndEcho(t, c, "byte by byte", "byte by byte")
}

func checkUpgradeAndEcho(t *testing.T, c *wsClient, text, what string) {
	t.Helper()
	resp, err := c.readResponse()
	if err != nil || resp.status != 101 {
		t.Fatalf("%s: upgrade: %d %v", what, resp.status, err)
	}
	c.readWelcome()
	m, err := c.readMessage()
	if err != nil || m.op != opText || string(m.payload) != text {
		t.Fatalf("%s: echo: %v %v", what, m, err)
	}
	if end := c.closeNormally(closeNormal); end.code != closeNormal || end.tcp != "EOF" {
		t.Fatalf("%s: close: %v", what, end)
	}
}

// rawUpgrade is an upgrade request for /ws?ticket=tk with exactly the given
// header lines, so a case can repeat or break any of them.
func rawUpgrade(tk string, lines ...string) []byte {
	return []byte("GET /ws?ticket=" + tk + " HTTP/1.1\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n")
}

var (
	hHost    = "Host: 127.0.0.1"
	hUpgrade = "Upgrade: websocket"
	hConn    = "Connection: Upgrade"
	hKey     = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
	hVersion = "Sec-WebSocket-Version: 13"
)

// handshakeCases are malformed opening handshakes that RFC 6455 4.2.1 (and
// HTTP) require a server to refuse with 400. None may spend the ticket.
func handshakeCases() []struct{ id, desc, lines string } {
	key := func(v string) string { return "Sec-WebSocket-Key: " + v }
	join := func(l ...string) string { return strings.Join(l, "\n") }
	return []struct{ id, desc, lines string }{
		{"11.1", "Sec-WebSocket-Key of 24 characters that are not base64", join(hHost, hUpgrade, hConn, key("!!!!!!!!!!!!!!!!!!!!!!=="), hVersion)},
		{"11.2", "Sec-WebSocket-Key: base64 of 17 bytes cut to 24 characters", join(hHost, hUpgrade, hConn, key("AAAAAAAAAAAAAAAAAAAAAAA="), hVersion)},
		{"11.3", "Sec-WebSocket-Key without padding (22 characters)", join(hHost, hUpgrade, hConn, key("dGhlIHNhbXBsZSBub25jZQ"), hVersion)},
		{"11.4", "Sec-WebSocket-Key base64url instead of base64", join(hHost, hUpgrade, hConn, key("dGhlIHNhbXBsZSBub25j-_=="), hVersion)},
		{"11.5", "two Sec-WebSocket-Key headers", join(hHost, hUpgrade, hConn, hKey, key("AAAAAAAAAAAAAAAAAAAAAA=="), hVersion)},
		{"11.6", "two Sec-WebSocket-Key headers, second in lower case", join(hHost, hUpgrade, hConn, hKey, "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==", hVersion)},
		{"11.7", "two Host headers", join(hHost, "Host: evil.example", hUpgrade, hConn, hKey, hVersion)},
		{"11.8", "NUL byte in a header value", join(hHost, hUpgrade, hConn, hKey, hVersion, "X-Note: a\x00b")},
		{"11.9", "NUL byte in the Host value", join("Host: 127.0.0.1\x00evil", hUpgrade, hConn, hKey, hVersion)},
		{"11.10", "no Sec-WebSocket-Key", join(hHost, hUpgrade, hConn, hVersion)},
		{"11.11", "no Host", join(hUpgrade, hConn, hKey, hVersion)},
	}
}

// TestConformanceOpeningHandshake sends each malformed opening handshake
// with a valid ticket: the answer is a complete 400, and the same ticket
// then still admits a well-formed upgrade (nothing spent it).
func TestConformanceOpeningHandshake(t *testing.T) {
	s := conformanceServer(t)
	var results []caseResult
	for _, tc := range handshakeCases() {
		t.Run(tc.id, func(t *testing.T) {
			res := caseResult{id: tc.id, desc: tc.desc, want: "400, ticket kept"}
			tk := s.issue(t, "handshake")
			c := rawDial(t, s.addr)
			c.send(rawUpgrade(tk, strings.Split(tc.lines, "\n")...))
			resp, err := c.readResponse()
			status := resp.status
			end := c.awaitEOF()
			kept := rawDial(t, s.addr)
			kept.send(upgradeRequest("/ws", tk))
			again, err2 := kept.readResponse()
			res.got = fmt.Sprintf("%d (%v), tcp %s; ticket then %d", status, err, end, again.status)
			res.pass = err == nil && status == 400 && end == "EOF" && err2 == nil && again.status == 101
			if !res.pass {
				t.Errorf("%s %s: want %s, got %s", tc.id, tc.desc, res.want, res.got)
			}
			results = append(results, res)
		})
	}
	logTable(t, "11 opening handshake", results)
}

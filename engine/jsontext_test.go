package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompactJSONTextAccepts(t *testing.T) {
	cases := []struct{ in, want string }{
		{`1`, `1`},
		{` { "a" : [ 1 , 2.5e-3 , -0 , true , false , null ] } `, `{"a":[1,2.5e-3,-0,true,false,null]}`},
		{"{\n\t\"user\": \"maggie\",\r\n \"data\": {\"k\": \"v w\"}\n}", `{"user":"maggie","data":{"k":"v w"}}`},
		{`"spaces inside strings stay"`, `"spaces inside strings stay"`},
		{`"é 日本 🎉"`, `"é 日本 🎉"`},
		{`"\ud83d\ude00 is a pair"`, `"\ud83d\ude00 is a pair"`},
		{`"\uD83D\uDE00 upper-case pair"`, `"\uD83D\uDE00 upper-case pair"`},
		{`"\" \\ \/ \b \f \n \r \t \u0000 \u00e9 \uffff"`, `"\" \\ \/ \b \f \n \r \t \u0000 \u00e9 \uffff"`},
		{"\"\uFFFE noncharacter\"", "\"\uFFFE noncharacter\""},
		{`[]`, `[]`}, {`{}`, `{}`}, {`[ ]`, `[]`}, {`{ }`, `{}`}, {`[[[]]]`, `[[[]]]`},
		{`{"a":{"b":[{"c":[]}]}}`, `{"a":{"b":[{"c":[]}]}}`},
		{strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)},
	}
	for _, c := range cases {
		got, err := compactJSONText([]byte(c.in))
		if err != nil {
			t.Errorf("%.40q: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%.40q: got %.60q, want %.60q", c.in, got, c.want)
		}
	}
}

func TestCompactJSONTextRefuses(t *testing.T) {
	cases := []struct {
		name, in string
		want     error
		has      string
	}{
		{"empty", ``, errJSONSyntax, "unexpected end"},
		{"spaces only", `   `, errJSONSyntax, "unexpected end"},
		{"truncated object", `{"user":`, errJSONSyntax, "unexpected end"},
		{"truncated string", `{"a":"abc`, errJSONSyntax, "inside a string"},
		{"two values", `{"a":1}{}`, errJSONSyntax, "more than one"},
		{"trailing junk", `{"a":1} x`, errJSONSyntax, "'x'"},
		{"missing colon", `{"a" 1}`, errJSONSyntax, "':'"},
		{"bare key", `{a:1}`, errJSONSyntax, "member's name"},
		{"trailing comma", `[1,]`, errJSONSyntax, "a value"},
		{"trailing comma in object", `{"a":1,}`, errJSONSyntax, "member's name"},
		{"mismatched close", `[1}`, errJSONSyntax, "']'"},
		{"leading zero", `01`, errJSONSyntax, "leading zero"},
		{"leading zero inside", `[-00]`, errJSONSyntax, "leading zero"},
		{"bare minus", `-`, errJSONSyntax, "digit"},
		{"dot without digits", `1.`, errJSONSyntax, "'.'"},
		{"empty exponent", `1e+`, errJSONSyntax, "exponent"},
		{"bad literal", `tru`, errJSONSyntax, "true"},
		{"bad literal 2", `nul1`, errJSONSyntax, "null"},
		{"control character", "\"a\tb\"", errJSONSyntax, "control character"},
		{"bad escape", `"\x"`, errJSONSyntax, "escape"},
		{"short unicode escape", `"\u12"`, errJSONSyntax, "four hex"},
		{"too deep", strings.Repeat("[", maxJSONDepth+1), errJSONSyntax, "nested deeper"},
		{"invalid UTF-8 in a string", "{\"data\":\"\xff\"}", errJSONUTF8, "at byte 9"},
		{"truncated UTF-8", "\"\xe6\x97\"", errJSONUTF8, "0xe6"},
		{"overlong UTF-8", "\"\xc0\xaf\"", errJSONUTF8, "0xc0"},
		{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", errJSONUTF8, "0xed"},
		{"invalid UTF-8 outside strings", "[1,\xff]", errJSONUTF8, "0xff"},
		{"lone high surrogate", `{"data":"\ud800"}`, errJSONSurrogate, `\ud800 not followed`},
		{"high surrogate at end", `"\uD83D`, errJSONSurrogate, "not followed"},
		{"high then non-surrogate", `"\ud83d\u0041"`, errJSONSurrogate, "not followed"},
		{"two high surrogates", `"\ud83d\ud83d"`, errJSONSurrogate, "not followed"},
		{"high then plain text", `"\ud83dabcdef"`, errJSONSurrogate, "not followed"},
		{"lone low surrogate", `"\udc00"`, errJSONSurrogate, "without a high"},
		{"reversed pair", `"\ude00\ud83d"`, errJSONSurrogate, "without a high"},
		{"lone surrogate as a key", `{"\udfff":1}`, errJSONSurrogate, "without a high"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compactJSONText([]byte(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("%q: err %v, want %v", c.in, err, c.want)
			}
			if !strings.Contains(err.Error(), c.has) {
				t.Fatalf("%q: error %q does not mention %q", c.in, err, c.has)
			}
		})
	}
}

func TestCompactJSONTextDoesNotAllocate(t *testing.T) {
	src := []byte(publishBody)
	buf := make([]byte, len(src))
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, src)
		if _, err := compactJSONText(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per body, want 0", allocs)
	}
}

// The validator agrees with encoding/json and unicode/utf8 on what is JSON
// and UTF-8, compacts exactly like json.Compact, and refuses beyond them only
// unpaired surrogate escapes, which json.Unmarshal would turn into U+FFFD.
func FuzzCompactJSONText(f *testing.F) {
	for _, s := range []string{publishBody, `{"a":[1,2,{"b":null}]}`, `"\ud83d\ude00"`, `"\ud800"`, "\"\xff\"",
		`-1.5e+10`, ` [ true , false ] `, `{"a":"\u00e9\n"}`, `[1,]`, `01`, `"\udc00\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := compactJSONText(bytes.Clone(in))
		valid := json.Valid(in) && utf8.Valid(in)
		switch {
		case err == nil:
			if !valid {
				t.Fatalf("accepted %q, which encoding/json or utf8 refuses", in)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, in); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("compact %q = %q, json.Compact says %q", in, got, want.Bytes())
			}
			var v any
			dec := json.NewDecoder(bytes.NewReader(got))
			dec.UseNumber() // 1e700 is JSON, not a float64
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("compact output %q does not decode: %v", got, err)
			}
			if bytes.Contains(in, []byte(`\u`)) {
				// No unpaired surrogate: nothing decodes to U+FFFD unless
				// the input spelled U+FFFD itself.
				if r, _ := json.Marshal(v); bytes.Contains(r, []byte("\uFFFD")) &&
					!bytes.Contains(in, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(in), []byte(`\ufffd`)) {
					t.Fatalf("%q decodes with U+FFFD", in)
				}
			}
		case errors.Is(err, errJSONSurrogate):
			if !surrogateEscape.Match(in) {
				t.Fatalf("%q: surrogate error without a surrogate escape", in)
			}
		case errors.Is(err, errJSONSyntax), errors.Is(err, errJSONUTF8):
			if valid && !strings.Contains(err.Error(), "nested deeper") {
				t.Fatalf("refused valid JSON %q: %v", in, err)
			}
		default:
			t.Fatalf("%q: unexpected error %v", in, err)
		}
	})
}

var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// publishBody is a typical /publish body: nested data, text in several
// scripts, numbers and escapes, pretty-printed as a backend might send it.
var publishBody = `{
  "user": "maggie",
  "data": {
    "type": "order.updated",
    "id": 918273645,
    "total": 129.95,
    "currency": "EUR",
    "customer": {"name": "Zoë Ångström", "city": "Malmö", "tags": ["vip", "früh", "日本"]},
    "lines": [
      {"sku": "A-1", "qty": 2, "price": 19.99, "note": "gift \"wrapped\"\n"},
      {"sku": "B-22", "qty": 1, "price": 89.97, "note": "🎉 \u00e9\ud83d\ude00"}
    ],
    "updated": "2026-12-01T21:57:00Z",
    "flags": {"paid": true, "shipped": false, "coupon": null}
  }
}`

// The old path: decode, then json.Compact the data (which validates neither
// UTF-8 nor surrogates). The new one validates and compacts the whole body
// first, in place, and the data comes out of the decoder compact.
func BenchmarkPublishBody(b *testing.B) {
	big := `{"broadcast":true,"data":[` + strings.Repeat(`{"name": "Zoë", "n": 12345, "text": "lorem ipsum dolor sit amet"}, `, 700) + `0]}`
	for _, body := range []struct{ name, text string }{{"typical", publishBody}, {"64KiB", big}} {
		src := []byte(body.text)
		buf := make([]byte, len(src))
		b.Run(body.name+"/json.Compact", func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, src)
				req, msg := parsePublishWithCompact(buf)
				if msg != "" || len(req.Data) == 0 {
					b.Fatal(msg)
				}
			}
		})
		b.Run(body.name+"/compactJSONText", func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, src)
				req, msg := parsePublish(buf)
				if msg != "" || len(req.Data) == 0 {
					b.Fatal(msg)
				}
			}
		})
	}
}

// The validator alone against json.Compact alone and against what checking
// with the standard library would take (json.Valid plus utf8.Valid).
func BenchmarkJSONText(b *testing.B) {
	src := []byte(publishBody)
	buf := make([]byte, len(src))
	b.Run("compactJSONText", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			copy(buf, src)
			if _, err := compactJSONText(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if err := json.Compact(&out, src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Valid+utf8.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(src) || !utf8.Valid(src) {
				b.Fatal("invalid")
			}
		}
	})
}

// parsePublishWithCompact is parsePublish as it was before compactJSONText,
// kept for the benchmark.
func parsePublishWithCompact(body []byte) (publishRequest, string) {
	var req publishRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, "malformed JSON body: " + err.Error()
	}
	if dec.More() {
		return req, "malformed JSON body: more than one JSON value"
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Data); err == nil {
		req.Data = compact.Bytes()
	}
	return req, ""
}

// /publish refuses a body that would make an invalid text frame, or a string
// that consumers would decode differently, and sends nothing.
func TestPublishRefusesNonUnicodeData(t *testing.T) {
	const key = "publish-key-for-tests-0123456789"
	cases := []struct {
		name, body string
		status     int
		has, data  string
	}{
		{"invalid UTF-8", "{\"user\":\"u\",\"data\":\"caf\xe9\"}", 400, "not valid UTF-8", ""},
		{"invalid UTF-8 in a nested key", "{\"user\":\"u\",\"data\":{\"\xc3\":1}}", 400, "not valid UTF-8", ""},
		{"lone surrogate", `{"broadcast":true,"data":"\ud800"}`, 400, "unpaired surrogate", ""},
		{"surrogate pair", `{"user":"u","data": "\ud83d\ude00" }`, 200, "", `"\ud83d\ude00"`},
		{"UTF-8 text, compacted", "{\"user\":\"u\",\"data\": { \"t\" : \"Zoë 🎉\" } }", 200, "", "{\"t\":\"Zoë 🎉\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hub := &recordingHub{}
			h, err := NewPublishHandler(hub, key, 0)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("POST", "/publish", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+key)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				var e struct{ Error string }
				if json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, tc.has) {
					t.Fatalf("error %s does not mention %q", rec.Body, tc.has)
				}
				if !utf8.Valid(rec.Body.Bytes()) {
					t.Fatalf("the error body itself is not UTF-8: %q", rec.Body)
				}
				if hub.calls != 0 {
					t.Fatal("a refused publish reached the hub")
				}
				return
			}
			if hub.calls != 1 || hub.data != tc.data {
				t.Fatalf("hub got %q (%d calls), want %q", hub.data, hub.calls, tc.data)
			}
		})
	}
}

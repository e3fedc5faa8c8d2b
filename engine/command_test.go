package engine

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// refCommand decodes msg with encoding/json, the reference the hand-written
// parser must agree with on every message it accepts.
func refCommand(msg []byte) (m map[string]json.RawMessage, ok bool) {
	if !json.Valid(msg) || json.Unmarshal(msg, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

func checkAgainstReference(t *testing.T, msg []byte) {
	var p cmdParser
	cmd, reason := p.parseCommand(msg)
	ref, refOK := refCommand(msg)
	if reason == reasonTooDeep {
		return // a deliberate limit, beyond encoding/json's
	}
	if reason == reasonNotJSON {
		if refOK && utf8.Valid(msg) {
			t.Fatalf("%q: parser says not JSON, encoding/json reads %v", msg, ref)
		}
		return
	}
	if reason != "" {
		return // refused (a field error may be found before the JSON ends)
	}
	if !refOK {
		t.Fatalf("%q: parser accepted it, encoding/json does not read it", msg)
	}
	str := func(key string) string {
		var s string
		if err := json.Unmarshal(ref[key], &s); err != nil {
			t.Fatalf("%q: %s is not a string for encoding/json: %v", msg, key, err)
		}
		return s
	}
	if got, want := cmd.typ.String(), str("type"); got != want {
		t.Fatalf("%q: type %s, want %s", msg, got, want)
	}
	if cmd.hasChan && string(cmd.channel) != str("channel") {
		t.Fatalf("%q: channel %q, want %q", msg, cmd.channel, str("channel"))
	}
	if cmd.hasTkt && string(cmd.ticket) != str("ticket") {
		t.Fatalf("%q: ticket %q, want %q", msg, cmd.ticket, str("ticket"))
	}
	if raw, ok := ref["id"]; ok {
		var n uint64
		if err := json.Unmarshal(raw, &n); err != nil || !cmd.id.ok || cmd.id.n != n {
			t.Fatalf("%q: id %+v, want %s", msg, cmd.id, raw)
		}
	}
	if cmd.since {
		var s struct {
			Offset uint64
			Epoch  string
		}
		if err := json.Unmarshal(ref["since"], &s); err != nil || s.Offset != cmd.sinceOff || s.Epoch != string(cmd.epoch) {
			t.Fatalf("%q: since %d %q, want %s", msg, cmd.sinceOff, cmd.epoch, ref["since"])
		}
	}
}

var commandSeeds = []string{
	`{"type":"subscribe","id":1,"channel":"news"}`,
	`{"type":"subscribe","id":1,"channel":"news","since":{"offset":41,"epoch":"e1"}}`,
	`{"type":"unsubscribe","id":2,"channel":"news"}`,
	`{"type":"ping","id":3}`,
	`{"type":"refresh","id":4,"ticket":"AAAAAAAAAAAAAAAAAAAAAA"}`,
	` { "type" : "ping" , "id" : 0 } `,
	`{"type":"subscribe","channel":"n\u0065ws\/x","extra":[1,{"a":[true,false,null,-1.5e3]}],"since":null}`,
	`{"type":"subscribe","channel":"\ud83d\ude00","since":{"epoch":"\"","offset":0,"x":{}}}`,
	`{"type":"ping","id":01}`,
	`{"type":"ping","id":9007199254740992}`,
	`{"type":"ping","id":18446744073709551616}`,
	`{"type":"ping",}`,
	`{"type":"ping"`,
	`{"type":"ping"}x`,
	`{"type":"ping","a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"type":"ping","a":{"b":1,"c":[1,2,]}}`,
	`{"type":"ping","a":"\x"}`,
	`{"type":"ping","a":"\u12"}`,
	"{\"type\":\"ping\",\"a\":\"\x01\"}",
	`{"type":"subscribe","channel":"\ud800"}`,
	`[]`, `null`, `"x"`, `7`, ``, `{`, `}`,
}

// The parser accepts what encoding/json reads as one object, refuses the
// rest, and agrees on every field it returns.
func TestCommandParserAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range commandSeeds {
		checkAgainstReference(t, []byte(s))
	}
}

// The parser neither panics nor diverges from encoding/json on any input,
// and never allocates for a message without escapes once warmed up.
func FuzzCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if !utf8.Valid(msg) {
			return // text frames are validated before they are parsed
		}
		checkAgainstReference(t, msg)
	})
}

func TestCommandParserAllocs(t *testing.T) {
	var p cmdParser
	msg := []byte(`{"type":"subscribe","id":7,"channel":"news","since":{"offset":41,"epoch":"e1"},"x":[1,{"y":null}]}`)
	if n := testing.AllocsPerRun(100, func() {
		if _, r := p.parseCommand(msg); r != "" {
			t.Fatal(r)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per parse", n)
	}
	deep := []byte(`{"type":"ping","a":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`)
	if _, r := p.parseCommand(deep); r != reasonTooDeep {
		t.Fatalf("1000-deep array: %q", r)
	}
}

func BenchmarkCommandParse(b *testing.B) {
	msg := []byte(`{"type":"subscribe","id":7,"channel":"news","since":{"offset":41,"epoch":"e1"}}`)
	b.Run("hand-written", func(b *testing.B) {
		var p cmdParser
		b.ReportAllocs()
		for b.Loop() {
			if _, r := p.parseCommand(msg); r != "" {
				b.Fatal(r)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c struct {
				Type    string
				ID      uint64
				Channel string
				Since   *struct {
					Offset uint64
					Epoch  string
				}
			}
			if err := json.Unmarshal(msg, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

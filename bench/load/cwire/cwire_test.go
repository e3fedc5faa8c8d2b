package cwire

import (
	"strings"
	"testing"
)

// TestParse reads lines shaped as centrifuge v0.40.1 writes them (the peer's
// own test, bench/peers/centrifuge, reads a real node's).
func TestParse(t *testing.T) {
	frame := `{"id":1,"connect":{"client":"c1","version":"0.0.0","subs":{"#maggie":{},"broadcast":{}},"ping":25,"pong":true}}` + "\n" +
		`{}` + "\n" +
		`{"push":{"channel":"broadcast","pub":{"data":{"seq":1,"t":7,"p":"a\nb"}}}}` + "\n" +
		`{"push":{"message":{"data":{"t":9}}}}` + "\n" +
		`{"id":1,"error":{"code":109,"message":"token expired"}}` + "\n" +
		`{"push":{"channel":"x","join":{}}}`
	type got struct {
		k       Kind
		ch, dat string
	}
	var all []got
	Each([]byte(frame), func(l []byte) {
		k, ch, d := Parse(l)
		all = append(all, got{k, ch, string(d)})
	})
	want := []got{{ConnectReply, "", ""}, {Ping, "", ""}, {Publication, "broadcast", `{"seq":1,"t":7,"p":"a\nb"}`},
		{Message, "", `{"t":9}`}, {Error, "", ""}, {Other, "", ""}}
	if len(all) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(all), len(want), all)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, all[i], want[i])
		}
	}
	if s := string(Send(nil, []byte(`{"t":1}`))); s != `{"send":{"data":{"t":1}}}` {
		t.Errorf("send %s", s)
	}
	if k, _, _ := Parse([]byte(strings.Repeat("{", 3))); k != Other {
		t.Errorf("malformed: %d", k)
	}
}

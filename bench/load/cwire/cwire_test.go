package cwire

import (
	"encoding/json"
	"reflect"
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
		`{"push":{"channel":"x","join":{}}}` + "\n" +
		`{"id":2,"subscribe":{"recoverable":true,"epoch":"Xyz","positioned":true}}` + "\n" +
		`{"push":{"channel":"load:3","pub":{"data":{"t":1},"offset":7}}}` + "\n" +
		`{"id":3,"subscribe":{"recoverable":true,"epoch":"Xyz","publications":[{"data":{"t":2},"offset":8},{"data":"x","offset":9}],"recovered":true,"offset":9,"positioned":true,"was_recovering":true}}` + "\n" +
		`{"id":4,"subscribe":{"recoverable":true,"epoch":"New","offset":3,"positioned":true,"was_recovering":true}}`
	var all []Line
	Each([]byte(frame), func(l []byte) { all = append(all, Parse(l)) })
	want := []Line{{Kind: ConnectReply}, {Kind: Ping}, {Kind: Publication, Channel: "broadcast", Data: []byte(`{"seq":1,"t":7,"p":"a\nb"}`)},
		{Kind: Message, Data: []byte(`{"t":9}`)}, {Kind: Error}, {},
		{Kind: SubscribeReply, Epoch: "Xyz"},
		{Kind: Publication, Channel: "load:3", Data: []byte(`{"t":1}`), Offset: 7},
		{Kind: SubscribeReply, Epoch: "Xyz", Offset: 9, Recovering: true, Recovered: true,
			Pubs: []Pub{{Data: []byte(`{"t":2}`), Offset: 8}, {Data: []byte(`"x"`), Offset: 9}}},
		{Kind: SubscribeReply, Epoch: "New", Offset: 3, Recovering: true}}
	if len(all) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(all), len(want), all)
	}
	for i := range want {
		if !reflect.DeepEqual(all[i], want[i]) {
			t.Errorf("line %d: %+v, want %+v", i, all[i], want[i])
		}
	}
	if top := all[8].Top(); top != 9 {
		t.Errorf("top of the recovering reply %d, want 9", top)
	}
	if l := Parse([]byte(`{"id":3,"subscribe":{"epoch":"E","publications":[{"data":1,"offset":4}],"recovered":true,"offset":2,"was_recovering":true}}`)); l.Top() != 4 {
		t.Errorf("top %d: want the newest publication's offset, 4, over the offset asked for", l.Top())
	}
	if k := Parse([]byte(strings.Repeat("{", 3))).Kind; k != Other {
		t.Errorf("malformed: %d", k)
	}
}

// TestCommands: the commands are JSON of the protocol's shape, names
// quoted whatever they hold.
func TestCommands(t *testing.T) {
	if s := string(Send(nil, []byte(`{"t":1}`))); s != `{"send":{"data":{"t":1}}}` {
		t.Errorf("send %s", s)
	}
	for _, c := range []struct {
		channel, epoch string
		offset         uint64
		want           string
	}{
		{"load:1", "", 0, `{"id":2,"subscribe":{"channel":"load:1"}}`},
		{"load:1", "Xyz", 42, `{"id":2,"subscribe":{"channel":"load:1","recover":true,"offset":42,"epoch":"Xyz"}}`},
		{`a"b`, `e"\`, 0, `{"id":2,"subscribe":{"channel":"a\"b","recover":true,"offset":0,"epoch":"e\"\\"}}`},
	} {
		got := Subscribe(nil, 2, c.channel, c.offset, c.epoch)
		if string(got) != c.want || !json.Valid(got) {
			t.Errorf("Subscribe(%q, %d, %q) = %s, want %s", c.channel, c.offset, c.epoch, got, c.want)
		}
	}
}

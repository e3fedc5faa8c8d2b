package load

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestFanoutData(t *testing.T) {
	if got := string(fanoutData(3, 123, 0)); got != `{"seq":3,"t":123}` {
		t.Errorf("default data %s, want the object fanout always sent", got)
	}
	for _, size := range []int{minMessageSize, 200, 1024, 4096, 65536} {
		b := fanoutData(7, 1764633600123456789, size)
		var v struct {
			Seq   int   `json:"seq"`
			T     int64 `json:"t"`
			Items []any `json:"items"`
		}
		if len(b) != size || json.Unmarshal(b, &v) != nil || v.Seq != 7 || v.T != 1764633600123456789 {
			t.Fatalf("size %d: %d bytes, %+v: %s", size, len(b), v, b)
		}
		if size >= 1024 && len(v.Items) < 2 {
			t.Errorf("size %d: %d items", size, len(v.Items))
		}
		if !bytes.Equal(b, fanoutData(7, 1764633600123456789, size)) {
			t.Errorf("size %d: not the same twice (workers rebuild it to check)", size)
		}
		if bytes.Equal(b, fanoutData(8, 1764633600123456789, size)) {
			t.Errorf("size %d: every seq the same words", size)
		}
	}
	// Compressible like JSON, not like one repeated byte: deflate must
	// neither fail to shrink it nor squeeze it to almost nothing.
	var f inflater
	b := fanoutData(1, 1764633600123456789, 1024)
	z := deflateMessage(t, b)
	if r := float64(len(z)) / float64(len(b)); r < 0.3 || r > 0.8 {
		t.Errorf("1 KiB compresses to %.2f of its size; want JSON-like, 0.3..0.8", r)
	}
	if got, err := f.inflate(z); err != nil || !bytes.Equal(got, b) {
		t.Errorf("round trip: %v", err)
	}
}

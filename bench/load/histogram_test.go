package load

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBoundsContainValue(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 123456789, 1 << 40, 1<<62 + 12345} {
		lo, hi := bucketBounds(bucketOf(v))
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d with bounds [%d,%d]", v, bucketOf(v), lo, hi)
		}
		if hi > 64 && float64(hi-lo)/float64(lo) > 1.0/subCount+1e-9 {
			t.Errorf("bucket of %d too wide: [%d,%d]", v, lo, hi)
		}
	}
}

func TestQuantileMatchesExactWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * float64(time.Millisecond))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if d := float64(got-exact) / float64(exact); d > 0.02 || d < -0.02 {
			t.Errorf("q%.3f = %d, exact %d (off %.2f%%)", q, got, exact, d*100)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("max %d, want %d", h.Max(), vals[len(vals)-1])
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 %v != max %v", h.Quantile(1), h.Max())
	}
}

func TestQuantileSmallSets(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram must report 0")
	}
	for _, v := range []int64{10, 20, 30, 40} {
		h.Record(v)
	}
	cases := []struct {
		q    float64
		want time.Duration
	}{{0, 10}, {0.25, 10}, {0.5, 20}, {0.51, 30}, {0.99, 40}, {1, 40}}
	for _, c := range cases {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("q%.2f = %d, want %d", c.q, got, c.want)
		}
	}
}

func TestMergeAndJSONRoundTrip(t *testing.T) {
	var a, b, all Histogram
	for i := int64(1); i <= 1000; i++ {
		v := i * 7919 % 100003 * 1000
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var b2 Histogram
	if err := json.Unmarshal(raw, &b2); err != nil {
		t.Fatal(err)
	}
	a.Merge(&b2)
	if a != all {
		t.Fatalf("merge of halves differs from the whole: n %d/%d max %v/%v", a.Count(), all.Count(), a.Max(), all.Max())
	}
	if err := json.Unmarshal([]byte(`{"buckets":[[999999,1]],"n":1}`), &b2); err == nil {
		t.Fatal("out-of-range bucket accepted")
	}
}

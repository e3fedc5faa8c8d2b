package engine

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkPublishUserHTTP compares per-user publishes through /publish in
// batches of 100 with the same 100 publishes one request each, over
// loopback HTTP (keep-alive) against a running server: messages per second
// is the figure (the target: batches ≥ 10×).
func BenchmarkPublishUserHTTP(b *testing.B) {
	s, _ := startServer(b, Config{})
	const key = "publish-key-for-bench-0123456789"
	h, err := NewPublishHandler(s, key, 0)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := srv.Client()
	post := func(body string) {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	const n = 100
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"user":"user-%d","data":{"n":%d}}`, i%10, i)
	}
	batch := `{"messages":[` + strings.Join(items, ",") + `]}`
	b.Run("batch-100", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			post(batch)
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("single-x100", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			for _, item := range items {
				post(item)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "msgs/s")
	})
}

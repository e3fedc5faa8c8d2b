package engine

import "testing"

func BenchmarkRequestWellFormed(b *testing.B) {
	hdr := []byte(upgradeRequest("/ws", benchGood, "Origin: https://app.example.com\r\nUser-Agent: Mozilla/5.0\r\n"))
	b.ReportAllocs()
	for b.Loop() {
		if !requestWellFormed(hdr) {
			b.Fatal("refused a well-formed request")
		}
	}
}

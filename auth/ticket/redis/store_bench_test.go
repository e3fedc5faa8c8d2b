package redis

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
	"github.com/turnstile-push/turnstile/internal/redistest"
)

// A redeem storm through one Store (one node): b.N sealed tickets redeemed
// with RedeemAsync all at once. cmds/read is how many commands Redis
// found per socket read (total_reads_processed): above 1, rueidis
// pipelined the storm into fewer round trips than redeems.
//
//	go test -run '^$' -bench RedeemStorm -benchmem ./auth/ticket/redis
func BenchmarkRedeemStorm(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, srv.Addr)
	now := time.Now()
	texts := make([][]byte, b.N)
	for i := range texts {
		t, err := s.IssueText(ticket.Claims{Subject: "u" + strconv.Itoa(i)}, now, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		texts[i] = []byte(t)
	}
	reads := func() int {
		n, _ := strconv.Atoi(srv.Info("stats")["total_reads_processed"])
		return n
	}
	calls0, reads0 := srv.Calls(), reads()
	var wg sync.WaitGroup
	wg.Add(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for _, text := range texts {
		if err := s.RedeemAsync(text, now, func(_ ticket.Claims, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	calls, r := srv.Calls()-calls0, reads()-reads0
	if r > 0 {
		b.ReportMetric(float64(calls)/float64(r), "cmds/read")
	}
}

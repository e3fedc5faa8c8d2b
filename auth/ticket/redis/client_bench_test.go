package redis

// The client choice (issue 11, item 7): rueidis against go-redis v9 in the
// same run, from one node (one client) with many goroutines, on the two
// commands the hot paths send: GETDEL (a ticket redeem) and EVALSHA of a
// publish-shaped script (INCR + XADD MAXLEN + PEXPIRE + PUBLISH).
//
//	go test -run '^$' -bench 'Client' -benchmem -count 5 ./auth/ticket/redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/turnstile-push/turnstile/internal/redistest"
)

const benchPublishScript = `
local off = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], off .. '-1', 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return off`

// benchParallelism goroutines per GOMAXPROCS: a redeem storm is many
// handshakes in flight at once.
const benchParallelism = 64

type benchClient struct {
	getdel  func(ctx context.Context, key string) error
	publish func(ctx context.Context, ch string, data string) error
	close   func()
}

func newRueidis(b *testing.B, addr string) benchClient {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	script := rueidis.NewLuaScript(benchPublishScript)
	return benchClient{
		getdel: func(ctx context.Context, key string) error {
			err := c.Do(ctx, c.B().Getdel().Key(key).Build()).Error()
			if rueidis.IsRedisNil(err) {
				return nil
			}
			return err
		},
		publish: func(ctx context.Context, ch, data string) error {
			return script.Exec(ctx, c, []string{"o:" + ch, "s:" + ch, "p:" + ch}, []string{data, "100", "300000"}).Error()
		},
		close: c.Close,
	}
}

func newGoRedis(b *testing.B, addr string) benchClient {
	c := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 128, Protocol: 3})
	script := goredis.NewScript(benchPublishScript)
	return benchClient{
		getdel: func(ctx context.Context, key string) error {
			err := c.GetDel(ctx, key).Err()
			if err == goredis.Nil {
				return nil
			}
			return err
		},
		publish: func(ctx context.Context, ch, data string) error {
			return script.Run(ctx, c, []string{"o:" + ch, "s:" + ch, "p:" + ch}, data, "100", "300000").Err()
		},
		close: func() { _ = c.Close() },
	}
}

func BenchmarkClient(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	for _, cl := range []struct {
		name string
		new  func(*testing.B, string) benchClient
	}{{"rueidis", newRueidis}, {"goredis", newGoRedis}} {
		b.Run("GETDEL/"+cl.name, func(b *testing.B) {
			c := cl.new(b, srv.Addr)
			defer c.close()
			var n atomic.Int64
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.getdel(ctx, "t:"+strconv.FormatInt(n.Add(1), 36)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("Publish/"+cl.name, func(b *testing.B) {
			c := cl.new(b, srv.Addr)
			defer c.close()
			var n atomic.Int64
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch := "c" + strconv.FormatInt(n.Add(1)%64, 10)
					if err := c.publish(ctx, ch, `{"n":1}`); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/turnstile-push/turnstile/engine/broker"
	brokerredis "github.com/turnstile-push/turnstile/engine/broker/redis"
)

// newRedisBroker builds the Redis broker over -redis's clients, with the
// history limits of the flags; a cluster uses sharded pub/sub.
func (s *server) newRedisBroker() (broker.Broker, error) {
	b, err := brokerredis.New(brokerredis.Config{
		Shards:      s.redis.clients,
		HistorySize: s.cfg.HistorySize,
		HistoryTTL:  s.cfg.HistoryTTL,
		Sharded:     s.redis.cluster,
		Logger:      s.log.With("component", "redis-broker"),
	})
	if err != nil {
		return nil, err
	}
	s.redis.broker = b
	return b, nil
}

// redisBrokerHealth fails when this node's pub/sub canary stopped arriving.
func (s *server) redisBrokerHealth() error {
	if s.redis == nil || s.redis.broker == nil {
		return nil
	}
	return s.redis.broker.Health()
}

func (c *redisCollector) collectBroker(ch chan<- prometheus.Metric, counter func(*prometheus.Desc, float64, ...string)) {
	b := c.s.redis.broker
	if b == nil {
		return
	}
	st := b.Stats()
	counter(c.commands, float64(st.Commands))
	counter(c.errors, float64(st.Errors))
	counter(c.latency, st.Latency.Seconds())
	counter(c.reconnects, float64(st.Reconnects))
	counter(c.dropped, float64(st.Dropped))
	counter(c.gaps, float64(st.GapsFilled), "filled")
	counter(c.gaps, float64(st.GapsLost), "lost")
	ch <- prometheus.MustNewConstMetric(c.canaryLag, prometheus.GaugeValue, st.CanaryLag.Seconds())
}

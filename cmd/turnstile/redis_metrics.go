package main

import "github.com/prometheus/client_golang/prometheus"

// redisCollector exports the Redis engine's counters (-redis only).
type redisCollector struct {
	s *server

	tickets, probes, healthy                                        *prometheus.Desc
	commands, errors, latency, reconnects, dropped, gaps, canaryLag *prometheus.Desc
}

func newRedisCollector(s *server) *redisCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("turnstile_redis_"+name, help, labels, nil)
	}
	return &redisCollector{
		s:          s,
		tickets:    d("tickets_total", "Redis ticket store events: issued, redeemed, rejected_local (forged, malformed or expired: no round trip), refused (unknown or used, said Redis), unavailable.", "event"),
		probes:     d("probes_total", "Health PINGs to Redis by result.", "result"),
		healthy:    d("up", "1 when every Redis shard answered the last probe and the pub/sub canary arrives."),
		commands:   d("broker_commands_total", "Broker commands and scripts sent to Redis."),
		errors:     d("broker_errors_total", "Broker commands that failed (unreachable, too slow, refused)."),
		latency:    d("broker_command_seconds_total", "Total time spent in broker commands (divide by broker_commands_total for the mean)."),
		reconnects: d("pubsub_reconnects_total", "Pub/sub connections re-established."),
		dropped:    d("pubsub_dropped_total", "Malformed or oversized pub/sub messages dropped."),
		gaps:       d("pubsub_gap_publications_total", "Publications missed by pub/sub, by result: filled (delivered from history) or lost (history could not fill).", "result"),
		canaryLag:  d("canary_lag_seconds", "Time since this node's pub/sub canary last arrived (the worst shard)."),
	}
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tickets, c.probes, c.healthy, c.commands, c.errors, c.latency, c.reconnects, c.dropped, c.gaps, c.canaryLag} {
		ch <- d
	}
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.redis
	if r == nil {
		return
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ts := r.tickets.Stats()
	counter(c.tickets, float64(ts.Issued), "issued")
	counter(c.tickets, float64(ts.Redeemed), "redeemed")
	counter(c.tickets, float64(ts.Rejected), "rejected_local")
	counter(c.tickets, float64(ts.Misses), "refused")
	counter(c.tickets, float64(ts.Unavailable), "unavailable")
	probes, failures := r.probes.Load(), r.failures.Load()
	counter(c.probes, float64(probes-failures), "ok")
	counter(c.probes, float64(failures), "failed")
	up := 0.0
	if c.s.redisHealth() == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, up)
	c.collectBroker(ch, counter)
}

package main

import "github.com/prometheus/client_golang/prometheus"

// abuseCollector exports the counters of the HTTP API's abuse limits: the
// per-user ticket quota and the publish-key guard. A collector of its own, so
// that the limits stay out of the engine's metrics.
type abuseCollector struct {
	s                                                       *server
	ticketsOverQuota, publishAuthFailures, publishThrottled *prometheus.Desc
}

func newAbuseCollector(s *server) *abuseCollector {
	return &abuseCollector{
		s:                   s,
		ticketsOverQuota:    prometheus.NewDesc("turnstile_tickets_over_quota_total", "GET|POST /ws_ticket refused with 429: the user reached -max-tickets-per-user.", nil, nil),
		publishAuthFailures: prometheus.NewDesc("turnstile_publish_auth_failures_total", "Requests to publish-key endpoints refused with 401 (missing or wrong key).", nil, nil),
		publishThrottled:    prometheus.NewDesc("turnstile_publish_auth_throttled_total", "Requests to publish-key endpoints refused with 429: their address sent too many wrong keys.", nil, nil),
	}
}

func (c *abuseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ticketsOverQuota
	ch <- c.publishAuthFailures
	ch <- c.publishThrottled
}

func (c *abuseCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.ticketsOverQuota, c.s.handlers.Stats().TicketsOverQuota)
	counter(c.publishAuthFailures, c.s.keyGuard.failures.Load())
	counter(c.publishThrottled, c.s.keyGuard.throttled.Load())
}

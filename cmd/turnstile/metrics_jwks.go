package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/turnstile-push/turnstile/auth"
)

// jwksCollector exports the -jwks-url cache's counters: a provider that
// stopped answering shows as failed fetches while the cached keys serve.
type jwksCollector struct {
	jwks          *auth.JWKS
	fetches, keys *prometheus.Desc
}

func newJWKSCollector(j *auth.JWKS) *jwksCollector {
	return &jwksCollector{
		jwks:    j,
		fetches: prometheus.NewDesc("turnstile_jwks_fetches_total", "JWK Set fetches from -jwks-url by result (failed: the cached keys were kept).", []string{"result"}, nil),
		keys:    prometheus.NewDesc("turnstile_jwks_keys", "Keys in the cached JWK Set.", nil, nil),
	}
}

func (c *jwksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.fetches; ch <- c.keys }

func (c *jwksCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.jwks.Stats()
	ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(st.Fetches-st.Failures), "ok")
	ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(st.Failures), "failed")
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(st.Keys))
}

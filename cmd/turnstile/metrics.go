package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/turnstile-push/turnstile/engine"
	"github.com/turnstile-push/turnstile/engine/broker"
)

// statsCollector turns the counters that the engine, the ticket store and the
// auth handlers keep with atomics into Prometheus metrics at scrape time, so
// that counting costs the event loops no lock and no allocation.
type statsCollector struct {
	s *server

	openConns, deflateConns, handshakes, rejected, messages, publishes, slow, closes *prometheus.Desc
	tickets, ticketsLive, logins                                                     *prometheus.Desc

	channels, subscriptions, historyBytes, historyMessages *prometheus.Desc
	recoveries, commands, refreshes, commandFloods         *prometheus.Desc
}

func newStatsCollector(s *server) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("turnstile_"+name, help, labels, nil)
	}
	return &statsCollector{
		s:            s,
		openConns:    d("open_connections", "WebSocket connections open now (upgraded)."),
		deflateConns: d("compressed_connections", "WebSocket connections open now that negotiated permessage-deflate."),
		handshakes:   d("handshakes_total", "WebSocket handshakes by result.", "result"),
		rejected:     d("handshake_rejections_total", "Refused WebSocket handshakes by reason.", "reason"),
		messages:     d("messages_total", "WebSocket data messages by direction.", "direction"),
		publishes:    d("publishes_total", "Accepted publish and broadcast requests."),
		slow:         d("slow_consumer_closes_total", "Connections closed because their outbound queue passed -max-pending-bytes."),
		closes:       d("closes_total", "WebSocket connections ended, by reason (client_close, connection_lost, or why the server closed them; handshake_timeout before the upgrade).", "reason"),
		tickets:      d("tickets_total", "Tickets by event: issued, redeemed, rejected (unknown, used or expired at redeem), expired (reclaimed unused).", "event"),
		ticketsLive:  d("tickets_live", "Tickets issued and neither redeemed nor reclaimed."),
		logins:       d("logins_total", "POST /auth attempts by result.", "result"),

		channels:        d("channels_live", "Channels with at least one subscriber on this node."),
		subscriptions:   d("subscriptions", "(connection, channel) subscriptions on this node, personal channels included."),
		historyBytes:    d("history_bytes", "Bytes of channel history kept by the embedded broker (what -history-max-bytes bounds)."),
		historyMessages: d("history_messages", "Messages kept in channel history by the embedded broker."),
		recoveries:      d("recoveries_total", "Subscriptions with since, by result: recovered (every missed message sent) or failed (recovered:false).", "result"),
		commands:        d("commands_total", "Client commands by type and result.", "type", "result"),
		refreshes:       d("session_refreshes_total", "refresh commands by result.", "result"),
		commandFloods:   d("command_flood_closes_total", "Connections closed with 1008 for sending more than 100 commands per second."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.openConns, c.deflateConns, c.handshakes, c.rejected, c.messages, c.publishes, c.slow, c.closes, c.tickets, c.ticketsLive, c.logins,
		c.channels, c.subscriptions, c.historyBytes, c.historyMessages, c.recoveries, c.commands, c.refreshes, c.commandFloods} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}

	ws := c.s.ws.Stats()
	gauge(c.openConns, ws.OpenConns)
	gauge(c.deflateConns, ws.DeflateConns)
	var rejected uint64
	for reason, n := range ws.Rejected {
		counter(c.rejected, n, engine.RejectReason(reason).String())
		rejected += n
	}
	counter(c.handshakes, ws.Handshakes, "accepted")
	counter(c.handshakes, rejected, "rejected")
	counter(c.messages, ws.MessagesIn, "in")
	counter(c.messages, ws.MessagesOut, "out")
	counter(c.publishes, ws.Publishes)
	counter(c.slow, ws.SlowConsumers)
	gauge(c.channels, ws.Channels)
	gauge(c.subscriptions, ws.Subscriptions)
	counter(c.recoveries, ws.Recoveries[0], "recovered")
	counter(c.recoveries, ws.Recoveries[1], "failed")
	for t, byResult := range ws.Commands {
		if t == 0 && byResult[0] == 0 && byResult[1] == 0 {
			continue // "unknown" only ever fails; skip it until it does
		}
		counter(c.commands, byResult[0], engine.CommandTypes[t], "ok")
		counter(c.commands, byResult[1], engine.CommandTypes[t], "error")
	}
	counter(c.refreshes, ws.Refreshes[0], "ok")
	counter(c.refreshes, ws.Refreshes[1], "refused")
	counter(c.commandFloods, ws.CommandFloods)
	if m, ok := c.s.broker.(interface{ Stats() broker.MemoryStats }); ok {
		bs := m.Stats()
		gauge(c.historyBytes, bs.HistoryBytes)
		gauge(c.historyMessages, bs.Messages)
	}
	for reason, n := range ws.Closes {
		counter(c.closes, n, engine.CloseReason(reason).String())
	}

	ts := c.s.store.Stats()
	counter(c.tickets, ts.Issued, "issued")
	counter(c.tickets, ts.Redeemed, "redeemed")
	counter(c.tickets, ts.Rejected, "rejected")
	counter(c.tickets, ts.Expired, "expired")
	gauge(c.ticketsLive, ts.Live)

	as := c.s.handlers.Stats()
	counter(c.logins, as.LoginsOK, "ok")
	counter(c.logins, as.LoginsFailed, "failed")
	counter(c.logins, as.LoginsThrottled, "throttled")
	counter(c.logins, as.LoginsBadRequest, "bad_request")
}

func newMetricsHandler(s *server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStatsCollector(s),
		newAbuseCollector(s),
		newRedisCollector(s),
		buildInfoCollector(),
	)
	if s.jwks != nil {
		reg.MustRegister(newJWKSCollector(s.jwks))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

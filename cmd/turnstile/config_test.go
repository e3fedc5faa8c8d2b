package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig([]string{"-dev"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.WSAddr != ":8081" || c.WSPath != "/ws" || c.TicketTTL != 30*time.Second ||
		c.TicketCapacity != 1<<20 || c.HandshakeTime != 5*time.Second || c.MaxHeaderBytes != 8192 ||
		c.MaxMessageBytes != 65536 || c.PingInterval != 25*time.Second || c.IdleTimeout != time.Minute ||
		c.MaxPendingBytes != 1<<20 || c.JWTTTL != 15*time.Minute || c.JWTIssuer != "turnstile" ||
		c.JWTAudience != "turnstile" || c.LogLevel != slog.LevelInfo || c.LogJSON || c.Origins != nil ||
		c.Compression || c.CompressionMinBytes != 256 {
		t.Fatalf("defaults differ from DESIGN 1.1: %+v", c)
	}
}

func TestParseConfigEnvironmentAndFlags(t *testing.T) {
	c, err := parseConfig([]string{"-ticket-ttl", "10s", "-origins", "https://a.example, http://b.example:3000/"},
		env("TURNSTILE_TICKET_TTL", "20s", "TURNSTILE_JWT_SECRET", testSecret, "TURNSTILE_PUBLISH_KEY", "publish-key-0123456",
			"TURNSTILE_MAX_CONNS", "7", "TURNSTILE_ECHO", "true", "TURNSTILE_LOG_FORMAT", "json", "TURNSTILE_COMPRESSION", "on"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.TicketTTL != 10*time.Second {
		t.Errorf("flag should win over env: ticket ttl %v", c.TicketTTL)
	}
	if c.JWTSecret != testSecret || c.MaxConns != 7 || !c.Echo || !c.LogJSON || !c.Compression {
		t.Errorf("environment not applied: %+v", c)
	}
	if strings.Join(c.Origins, " ") != "https://a.example http://b.example:3000" {
		t.Errorf("origins %q", c.Origins)
	}
}

func TestParseConfigErrors(t *testing.T) {
	prod := []string{"TURNSTILE_JWT_SECRET", testSecret, "TURNSTILE_PUBLISH_KEY", "publish-key-0123456"}
	cases := []struct {
		name    string
		args    []string
		env     []string
		wantErr string
	}{
		{"no signing key", nil, []string{"TURNSTILE_PUBLISH_KEY", "publish-key-0123456"}, "no signing key"},
		{"no publish key", nil, []string{"TURNSTILE_JWT_SECRET", testSecret}, "no publish key"},
		{"short secret", []string{"-jwt-secret", "short"}, prod, "at least 32"},
		{"secret and key", []string{"-jwt-key", "k.pem"}, prod, "both set"},
		{"short publish key", []string{"-publish-key", "abc"}, prod, "at least 16"},
		{"bad env value", nil, append([]string{"TURNSTILE_TICKET_TTL", "soon"}, prod...), "TURNSTILE_TICKET_TTL"},
		{"bad flag value", []string{"-max-conns", "many"}, prod, "max-conns"},
		{"stray argument", []string{"serve"}, prod, "unexpected argument"},
		{"same ports", []string{"-http", ":9000", "-ws", ":9000"}, prod, "different ports"},
		{"bad address", []string{"-http", "localhost"}, prod, "-http"},
		{"bad path", []string{"-ws-path", "ws"}, prod, "-ws-path"},
		{"bad ws url", []string{"-ws-url", "http://x/ws"}, prod, "-ws-url"},
		{"ping not below idle", []string{"-ping-interval", "1m", "-idle-timeout", "30s"}, prod, "-ping-interval"},
		{"zero ttl", []string{"-ticket-ttl", "0s"}, prod, "-ticket-ttl"},
		{"ticket capacity past the store's", []string{"-ticket-capacity", "2000000000"}, prod, "-ticket-capacity"},
		{"tiny header limit", []string{"-max-header-bytes", "10"}, prod, "-max-header-bytes"},
		{"negative conns", []string{"-max-conns", "-1"}, prod, "-max-conns"},
		{"origin not an origin", []string{"-origins", "example.com"}, prod, "not an origin"},
		{"star in a list", []string{"-origins", "*,https://a.example"}, prod, "do not combine"},
		{"bad proxy", []string{"-trusted-proxies", "10.0.0.0/8,nginx"}, prod, "-trusted-proxies"},
		{"bad log level", []string{"-log-level", "loud"}, prod, "-log-level"},
		{"bad compression", []string{"-compression", "yes"}, prod, "-compression"},
		{"zero compression threshold", []string{"-compression-min-bytes", "0"}, prod, "-compression-min-bytes"},
		{"bad log format", []string{"-log-format", "xml"}, prod, "-log-format"},
		{"zero history", []string{"-history-size", "0"}, prod, "-history-size"},
		{"zero history ttl", []string{"-history-ttl", "0s"}, prod, "-history-ttl"},
		{"tiny history bytes", []string{"-history-max-bytes", "1000"}, prod, "-history-max-bytes"},
		{"zero channels", []string{"-max-channels-per-conn", "0"}, prod, "-max-channels-per-conn"},
		{"empty claim", []string{"-channels-claim", ""}, prod, "-channels-claim"},
		{"bad grant", []string{"-auth-channels", "news,a b"}, prod, "-auth-channels"},
		{"inner star", []string{"-auth-channels", "a*b"}, prod, "-auth-channels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(tc.env...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("ticket-ttl"); got != "TURNSTILE_TICKET_TTL" {
		t.Fatal(got)
	}
}

func TestParseConfigChannels(t *testing.T) {
	c, err := parseConfig([]string{"-dev"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HistorySize != 100 || c.HistoryTTL != 5*time.Minute || c.HistoryMaxBytes != 256<<20 ||
		c.MaxChannelsPerConn != 128 || c.ChannelsClaim != "channels" || c.AuthChannels != nil || c.authChannelsSet {
		t.Fatalf("channel defaults differ from DESIGN 1.4: %+v", c)
	}
	c, err = parseConfig([]string{"-dev"}, env("TURNSTILE_AUTH_CHANNELS", "news, chat:*"), io.Discard)
	if err != nil || strings.Join(c.AuthChannels, " ") != "news chat:*" || !c.authChannelsSet {
		t.Fatalf("-auth-channels from the environment: %+v %v", c, err)
	}
}

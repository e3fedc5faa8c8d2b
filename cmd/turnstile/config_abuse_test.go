package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/auth"
)

func TestParseConfigAbuseLimits(t *testing.T) {
	c, err := parseConfig([]string{"-dev"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.ThrottleConfig{AddrBurst: 10, AddrInterval: 30 * time.Second, UserBurst: 5, UserInterval: time.Minute, KnownTTL: 720 * time.Hour}
	if c.Login != want || c.MaxTicketsPerUser != 100 || c.PublishAuthBurst != 10 || c.PublishAuthInterval != 6*time.Second {
		t.Fatalf("defaults: %+v tickets %d publish %d/%v", c.Login, c.MaxTicketsPerUser, c.PublishAuthBurst, c.PublishAuthInterval)
	}
	c, err = parseConfig([]string{"-dev", "-login-user-burst", "2"}, env(
		"TURNSTILE_LOGIN_USER_BURST", "9", "TURNSTILE_LOGIN_KNOWN_TTL", "24h", "TURNSTILE_MAX_TICKETS_PER_USER", "0",
		"TURNSTILE_PUBLISH_AUTH_INTERVAL", "1m", "TURNSTILE_LOGIN_ADDR_BURST", "4"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Login.UserBurst != 2 || c.Login.KnownTTL != 24*time.Hour || c.Login.AddrBurst != 4 ||
		c.MaxTicketsPerUser != 0 || c.PublishAuthInterval != time.Minute {
		t.Fatalf("flags and environment: %+v tickets %d publish %v", c.Login, c.MaxTicketsPerUser, c.PublishAuthInterval)
	}
	if ticketQuota(0) != -1 || ticketQuota(7) != 7 {
		t.Fatal("-max-tickets-per-user 0 must mean no limit")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-login-user-burst", "0"}, "-login-user-burst 0"},
		{[]string{"-login-addr-interval", "0s"}, "-login-addr-interval"},
		{[]string{"-login-known-ttl", "-1h"}, "-login-known-ttl"},
		{[]string{"-max-tickets-per-user", "-1"}, "-max-tickets-per-user"},
		{[]string{"-max-tickets-per-user", "70000"}, "-max-tickets-per-user"},
		{[]string{"-publish-auth-burst", "0"}, "-publish-auth-burst"},
		{[]string{"-publish-auth-interval", "0s"}, "-publish-auth-interval"},
	} {
		_, err := parseConfig(append([]string{"-dev"}, tc.args...), env(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to name %s", tc.args, err, tc.want)
		}
	}
}

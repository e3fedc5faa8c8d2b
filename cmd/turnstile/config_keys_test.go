package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseConfigVerifyOnlyKeys(t *testing.T) {
	pk := []string{"TURNSTILE_PUBLISH_KEY", "publish-key-0123456"}
	c, err := parseConfig(nil, env(append(pk, "TURNSTILE_JWKS_URL", "https://idp.example/.well-known/jwks.json", "TURNSTILE_USER_CLAIM", "email")...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURL != "https://idp.example/.well-known/jwks.json" || c.UserClaim != "email" || !c.verifyOnly() {
		t.Fatalf("environment not applied: %+v", c)
	}
	if c, err := parseConfig([]string{"-jwt-public-key", "pub.pem"}, env(pk...), io.Discard); err != nil || !c.verifyOnly() || c.UserClaim != "sub" {
		t.Fatalf("-jwt-public-key: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"plain http to a public host", []string{"-jwks-url", "http://idp.example/jwks"}, "-jwks-url"},
		{"not a URL", []string{"-jwks-url", "idp.example"}, "https://"},
		{"three keys", []string{"-jwks-url", "https://i/j", "-jwt-public-key", "p.pem", "-jwt-key", "k.pem"}, "are all set"},
		{"dev and public key", []string{"-dev", "-jwt-public-key", "p.pem"}, "drop -dev"},
		{"users and jwks", []string{"-jwks-url", "https://i/j", "-users", "u.htpasswd"}, "-users needs a signing key"},
		{"empty user claim", []string{"-jwt-public-key", "p.pem", "-user-claim", ""}, "-user-claim is empty"},
		{"registered user claim", []string{"-jwt-public-key", "p.pem", "-user-claim", "aud"}, "registered claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(pk...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

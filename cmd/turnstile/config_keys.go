package main

import (
	"strings"

	"github.com/turnstile-push/turnstile/auth"
)

// keyFlags are the four ways to verify tokens; exactly one is needed
// outside -dev.
func (c *config) keyFlags() []string {
	var set []string
	for _, k := range []struct{ flag, v string }{{"-jwt-secret", c.JWTSecret}, {"-jwt-key", c.JWTKeyFile},
		{"-jwt-public-key", c.JWTPublicKey}, {"-jwks-url", c.JWKSURL}} {
		if k.v != "" {
			set = append(set, k.flag)
		}
	}
	return set
}

// verifyOnly says whether the key can only verify: then there is no /auth.
func (c *config) verifyOnly() bool { return c.JWTPublicKey != "" || c.JWKSURL != "" }

func (c *config) validateKeys(bad func(string, ...any)) {
	switch set := c.keyFlags(); {
	case len(set) > 1:
		verb := "are both set"
		if len(set) > 2 {
			verb = "are all set"
		}
		bad("%s %s: choose one key (HS256 secret, Ed25519 key file, public key file or JWKS URL)", strings.Join(set, " and "), verb)
	case len(set) == 0 && !c.Dev:
		bad("no signing key: set TURNSTILE_JWT_SECRET (32+ bytes), -jwt-key ed25519.pem, -jwt-public-key public.pem or -jwks-url https://…/jwks.json, or run with -dev")
	}
	if c.verifyOnly() {
		if c.Dev {
			bad("-dev signs demo logins with a random key, and -jwt-public-key / -jwks-url only verify: drop -dev (use -origins '*' and -publish-key for a test setup)")
		}
		if c.UsersFile != "" {
			bad("-users needs a signing key for /auth (-jwt-secret or -jwt-key); -jwt-public-key and -jwks-url only verify tokens issued elsewhere")
		}
	}
	if c.JWKSURL != "" {
		if _, err := auth.NewJWKS(auth.JWKSConfig{URL: c.JWKSURL}); err != nil {
			bad("-jwks-url %q: want https://… (plain http:// only for localhost or 127.0.0.0/8, ::1)", c.JWKSURL)
		}
	}
	switch c.UserClaim {
	case "":
		bad("-user-claim is empty: name the claim that holds the user (default sub)")
	case "iss", "aud", "exp", "nbf", "iat", "jti":
		bad("-user-claim %q is a registered claim that cannot name a user: use sub, email or another claim", c.UserClaim)
	}
}

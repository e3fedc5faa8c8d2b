package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/turnstile-push/turnstile/internal/testidp"
)

// dialWith upgrades with an Origin and subprotocols; it returns the status
// (101 on success), the protocol the server chose and the welcome's user.
func dialWith(t *testing.T, url, origin string, protocols ...string) (status int, protocol, user string) {
	t.Helper()
	d := ws.Dialer{Protocols: protocols}
	if origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, hs, err := d.Dial(ctx, url)
	var st ws.StatusError
	if errors.As(err, &st) {
		return int(st), "", ""
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	c := &wsClient{conn: conn, rw: conn}
	if br != nil {
		c.rw = readAhead{io.MultiReader(br, conn), conn}
	}
	welcome := c.read(t)
	u, _ := welcome["user"].(string)
	return 101, hs.Protocol, u
}

// startWithIdP runs the binary verifying the provider's tokens by JWKS.
func startWithIdP(t *testing.T, idp *testidp.Provider, args ...string) *testServer {
	return startBinaryArgs(t, append([]string{"-jwks-url", idp.URL(), "-jwt-issuer", testidp.Issuer,
		"-jwt-audience", testidp.Audience, "-origins", "https://app.example"}, args...)...)
}

func TestEndToEndJWKS(t *testing.T) {
	idp := testidp.New(t)
	s := startWithIdP(t, idp)
	if code := s.do(t, "POST", "/auth", "", `{"user":"maggie","pwd":"secret"}`, nil); code != http.StatusNotFound {
		t.Errorf("/auth with -jwks-url: %d, want 404 (verify-only)", code)
	}
	for _, kid := range []string{"rsa-1", "ec-1"} {
		code, _, url := s.ticketStatus(t, idp.Mint(t, kid, testidp.Claims("maggie")), "")
		if code != 200 {
			t.Fatalf("%s token: /ws_ticket %d", kid, code)
		}
		if st, _, user := dialWith(t, url, ""); st != 101 || user != "maggie" {
			t.Fatalf("%s: upgrade %d, user %q", kid, st, user)
		}
	}

	t.Run("refused", func(t *testing.T) {
		rsaKey := idp.Key("rsa-1")
		der, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		claims := func(change func(jwt.MapClaims)) jwt.MapClaims { c := testidp.Claims("maggie"); change(c); return c }
		for name, tok := range map[string]string{
			"expired":                   idp.Mint(t, "rsa-1", claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Second).Unix() })),
			"wrong iss":                 idp.Mint(t, "rsa-1", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" })),
			"wrong aud":                 idp.Mint(t, "ec-1", claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })),
			"HS256 with the public key": testidp.Sign(t, jwt.SigningMethodHS256, pubPEM, map[string]any{"kid": "rsa-1"}, testidp.Claims("maggie")),
			"alg none":                  testidp.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": "rsa-1"}, testidp.Claims("maggie")),
			"no kid":                    testidp.Sign(t, rsaKey.Method, rsaKey.Priv, nil, testidp.Claims("maggie")),
			"crit header":               testidp.Sign(t, rsaKey.Method, rsaKey.Priv, map[string]any{"kid": "rsa-1", "crit": []string{"x"}, "x": 1}, testidp.Claims("maggie")),
			"RSA kid, ES256 signature":  testidp.Sign(t, jwt.SigningMethodES256, idp.Key("ec-1").Priv, map[string]any{"kid": "rsa-1"}, testidp.Claims("maggie")),
			"attacker's key, real kid":  testidp.Sign(t, jwt.SigningMethodRS256, testidp.OtherRSA(), map[string]any{"kid": "rsa-1"}, testidp.Claims("maggie")),
		} {
			if code, _, _ := s.ticketStatus(t, tok, ""); code != http.StatusUnauthorized {
				t.Errorf("%s: /ws_ticket %d, want 401", name, code)
			}
		}
	})

	t.Run("rotation without restart", func(t *testing.T) {
		idp.Add("rsa-2", jwt.SigningMethodRS256)
		tok := idp.Mint(t, "rsa-2", testidp.Claims("maggie"))
		// A kid seen within the 5 s after the last fetch waits for the next
		// one (at most one refetch per 5 s): accepted within that, no restart.
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, _, _ := s.ticketStatus(t, tok, "")
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("new kid still refused (%d) after 15s", code)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("1000 random kids", func(t *testing.T) {
		tokens := idp.MintUnknownKIDs(t, "rsa-1", 1000, "mallory")
		before := idp.Fetches()
		start := time.Now()
		var wg sync.WaitGroup
		var not401 atomic.Int64
		for g := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < len(tokens); i += 10 {
					if code, _, _ := s.ticketStatus(t, tokens[i], ""); code != http.StatusUnauthorized {
						not401.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		fetches := idp.Fetches() - before
		limit := 2 + int64(elapsed/(5*time.Second))
		t.Logf("1000 tokens with random kids in %v: %d JWKS fetches (at most %d allowed)", elapsed, fetches, limit)
		if not401.Load() != 0 {
			t.Errorf("%d random-kid tokens not refused with 401", not401.Load())
		}
		if fetches > limit {
			t.Errorf("JWKS fetches = %d, want at most %d: the flood reached the provider", fetches, limit)
		}
	})

	t.Run("provider down keeps cached keys", func(t *testing.T) {
		idp.SetDown(true)
		defer idp.SetDown(false)
		before := idp.Fetches()
		deadline := time.Now().Add(15 * time.Second)
		for idp.Fetches() == before { // an unknown kid makes the server try the provider
			if time.Now().After(deadline) {
				t.Fatal("no fetch attempt reached the provider while it was down")
			}
			s.ticketStatus(t, idp.Mint(t, "ec-1", jwt.MapClaims{}), "")
			key := idp.Key("ec-1")
			s.ticketStatus(t, testidp.Sign(t, key.Method, key.Priv, map[string]any{"kid": "unknown"}, testidp.Claims("x")), "")
			time.Sleep(250 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // the failed fetch has been answered
		for _, kid := range []string{"rsa-1", "ec-1"} {
			if code, _, _ := s.ticketStatus(t, idp.Mint(t, kid, testidp.Claims("maggie")), ""); code != 200 {
				t.Errorf("%s while the provider is down: %d, want 200 from the cached key", kid, code)
			}
		}
		if !strings.Contains(s.metrics(t), `turnstile_jwks_fetches_total{result="failed"}`) {
			t.Error("/metrics lacks turnstile_jwks_fetches_total{result=\"failed\"}")
		}
	})
}

func TestEndToEndUserClaim(t *testing.T) {
	idp := testidp.New(t)
	s := startWithIdP(t, idp, "-user-claim", "email")
	c := testidp.Claims("auth0|123")
	c["email"] = "maggie@example.com"
	code, _, url := s.ticketStatus(t, idp.Mint(t, "rsa-1", c), "")
	if code != 200 {
		t.Fatalf("/ws_ticket %d", code)
	}
	if st, _, user := dialWith(t, url, ""); st != 101 || user != "maggie@example.com" {
		t.Fatalf("upgrade %d, user %q; want the email claim", st, user)
	}
	if code, _, _ := s.ticketStatus(t, idp.Mint(t, "rsa-1", testidp.Claims("auth0|123")), ""); code != http.StatusUnauthorized {
		t.Errorf("token without the email claim: %d, want 401", code)
	}
}

func TestEndToEndPublicKeyFile(t *testing.T) {
	idp := testidp.New(t)
	key := idp.Key("ec-1")
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(path, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBinaryArgs(t, "-jwt-public-key", path, "-jwt-issuer", testidp.Issuer, "-jwt-audience", testidp.Audience)
	if code := s.do(t, "POST", "/auth", "", `{"user":"maggie","pwd":"secret"}`, nil); code != http.StatusNotFound {
		t.Errorf("/auth with -jwt-public-key: %d, want 404", code)
	}
	if code, _, _ := s.ticketStatus(t, idp.Mint(t, "ec-1", testidp.Claims("maggie")), ""); code != 200 {
		t.Errorf("ES256 token: %d", code)
	}
	for name, tok := range map[string]string{
		"HS256 with the public key": testidp.Sign(t, jwt.SigningMethodHS256, pubPEM, nil, testidp.Claims("maggie")),
		"alg none":                  testidp.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, testidp.Claims("maggie")),
		"RS256 by another key":      idp.Mint(t, "rsa-1", testidp.Claims("maggie")),
	} {
		if code, _, _ := s.ticketStatus(t, tok, ""); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
}

// DESIGN 1.7: a ticket issued to a request with Origin admits only an
// upgrade with that Origin; another Origin, or none, gets 403 and spends it.
func TestEndToEndOriginBoundTicket(t *testing.T) {
	const app, other = "https://app.example", "https://other.example"
	s := startBinary(t, "-origins", app+","+other)
	token := s.Login(t, "maggie", "secret")
	for _, tc := range []struct {
		name, issued, upgrade string
		want                  int
	}{
		{"same Origin", app, app, 101},
		{"other allowed Origin", app, other, 403},
		{"no Origin", app, "", 403},
		{"unbound ticket, any allowed Origin", "", other, 101},
	} {
		code, _, url := s.ticketStatus(t, token, tc.issued)
		if code != 200 {
			t.Fatalf("%s: /ws_ticket %d", tc.name, code)
		}
		if st, _, _ := dialWith(t, url, tc.upgrade); st != tc.want {
			t.Errorf("%s: upgrade %d, want %d", tc.name, st, tc.want)
		}
		if tc.want == 403 { // spent: not even the right Origin gets in now
			if st, _, _ := dialWith(t, url, tc.issued); st != 401 {
				t.Errorf("%s: the refused ticket again from its own Origin: %d, want 401 (spent)", tc.name, st)
			}
		}
	}
}

// The ticket may travel in Sec-WebSocket-Protocol; it never reaches a log.
func TestEndToEndProtocolTicket(t *testing.T) {
	s := startBinary(t)
	token := s.Login(t, "maggie", "secret")
	_, tkt, url := s.ticketStatus(t, token, "")
	bare, _, _ := strings.Cut(url, "?")
	st, proto, user := dialWith(t, bare, "", "turnstile.v1", "turnstile.ticket."+tkt)
	if st != 101 || proto != "turnstile.v1" || user != "maggie" {
		t.Fatalf("upgrade %d, protocol %q, user %q", st, proto, user)
	}
	if st, _, _ := dialWith(t, bare, "", "turnstile.v1", "turnstile.ticket."+tkt); st != 401 {
		t.Errorf("the protocol ticket again: %d, want 401", st)
	}
	_, tkt2, url2 := s.ticketStatus(t, token, "")
	if st, _, _ := dialWith(t, url2, "", "turnstile.v1", "turnstile.ticket."+tkt2); st != 400 {
		t.Errorf("query and protocol ticket together: %d, want 400", st)
	}
	if st, _, _ := dialWith(t, bare, "", "turnstile.ticket."+tkt2); st != 400 {
		t.Errorf("ticket protocol without turnstile.v1: %d, want 400", st)
	}
	if st, proto, _ := dialWith(t, url2, "", "turnstile.v1"); st != 101 || proto != "turnstile.v1" {
		t.Errorf("query ticket after the 400s (unspent), v1 offered: %d %q", st, proto)
	}
	time.Sleep(100 * time.Millisecond)
	logs := s.Logs()
	for _, secret := range []string{tkt, tkt2, "turnstile.ticket."} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestBinaryRefusesBadKeys(t *testing.T) {
	dir := t.TempDir()
	idp := testidp.New(t)
	der, _ := x509.MarshalPKIXPublicKey(idp.Key("rsa-1").Public())
	pubFile := filepath.Join(dir, "public.pem")
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	privDER, _ := x509.MarshalPKCS8PrivateKey(idp.Key("rsa-1").Priv)
	privFile := filepath.Join(dir, "private.pem")
	os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	pk := []string{"-publish-key", testPublishKey}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"-jwt-key given a public key", append([]string{"-jwt-key", pubFile}, pk...), []string{"-jwt-key " + pubFile, "public key", "-jwt-public-key"}},
		{"-jwt-key given an RSA private key", append([]string{"-jwt-key", privFile}, pk...), []string{"-jwt-key " + privFile, "RSA", "Ed25519"}},
		{"-jwt-public-key given a private key", append([]string{"-jwt-public-key", privFile}, pk...), []string{"-jwt-public-key " + privFile, "private key", "-pubout"}},
		{"-jwt-public-key damaged", append([]string{"-jwt-public-key", junk}, pk...), []string{"-jwt-public-key " + junk, "does not parse"}},
		{"-jwt-public-key missing", append([]string{"-jwt-public-key", dir + "/none.pem"}, pk...), []string{"-jwt-public-key " + dir + "/none.pem", "no such file"}},
		{"-jwks-url plain http to a public host", append([]string{"-jwks-url", "http://idp.example/jwks.json"}, pk...), []string{"-jwks-url", "https://"}},
		{"two keys", append([]string{"-jwks-url", idp.URL(), "-jwt-public-key", pubFile}, pk...), []string{"-jwt-public-key and -jwks-url", "choose one"}},
		{"-dev with -jwks-url", []string{"-dev", "-jwks-url", idp.URL()}, []string{"-dev", "only verify"}},
		{"-users with -jwt-public-key", append([]string{"-users", "/dev/null", "-jwt-public-key", pubFile}, pk...), []string{"-users needs a signing key"}},
		{"-user-claim exp", append([]string{"-jwks-url", idp.URL(), "-user-claim", "exp"}, pk...), []string{"-user-claim", "registered"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := configFailure(t, tc.args...)
			for _, want := range tc.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("output %q does not mention %q", out, want)
				}
			}
			if strings.Contains(strings.ToLower(string(out)), "asn1") || strings.Contains(string(out), "structure error") {
				t.Errorf("output has an ASN.1 dump: %s", out)
			}
		})
	}
}

// The real binary fetches the JWK Set over https (trusting the provider's
// certificate through SSL_CERT_FILE, as an operator's CA bundle would).
func TestEndToEndJWKSOverHTTPS(t *testing.T) {
	idp := testidp.NewTLS(t)
	if !strings.HasPrefix(idp.URL(), "https://127.0.0.1:") {
		t.Fatalf("provider URL %s", idp.URL())
	}
	// Untrusted certificate: no keys, every token refused (TLS is verified).
	untrusted := startWithIdP(t, idp)
	if code, _, _ := untrusted.ticketStatus(t, idp.Mint(t, "rsa-1", testidp.Claims("maggie")), ""); code != http.StatusUnauthorized {
		t.Errorf("JWK Set behind an untrusted certificate: /ws_ticket %d, want 401", code)
	}
	for end := time.Now().Add(5 * time.Second); !strings.Contains(untrusted.Logs(), "certificate") && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(untrusted.Logs(), "certificate") {
		t.Errorf("no log line says the certificate was refused:\n%s", untrusted.Logs())
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, idp.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", ca)
	s := startWithIdP(t, idp)
	for _, kid := range []string{"rsa-1", "ec-1"} {
		if code, _, _ := s.ticketStatus(t, idp.Mint(t, kid, testidp.Claims("maggie")), ""); code != 200 {
			t.Errorf("%s token, JWK Set over https: /ws_ticket %d", kid, code)
		}
	}
}

// A node that has never fetched a usable key set would refuse every token:
// /readyz says so until the provider answers, then turns ready, and stays
// ready through a later outage (the cached keys still verify).
func TestReadyzWaitsForJWKS(t *testing.T) {
	idp := testidp.New(t)
	idp.SetDown(true)
	s := startWithIdP(t, idp)
	if code, body := s.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "jwks: no keys") {
		t.Fatalf("/readyz without keys: %d %s, want 503 jwks: no keys", code, body)
	}
	idp.SetDown(false)
	tok := idp.Mint(t, "rsa-1", testidp.Claims("maggie"))
	deadline := time.Now().Add(40 * time.Second) // the retry after a failed fetch is 30 s; a token's unknown kid asks sooner
	for {
		_, _, _ = s.ticketStatus(t, tok, "")
		code, body := s.readyz(t)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %s after the provider came back", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	idp.SetDown(true)
	if code, _, _ := s.ticketStatus(t, tok, ""); code != http.StatusOK {
		t.Fatalf("/ws_ticket during the outage: %d, want 200 from the cached keys", code)
	}
	if code, body := s.readyz(t); code != http.StatusOK {
		t.Fatalf("/readyz during an outage with cached keys: %d %s, want 200", code, body)
	}
}

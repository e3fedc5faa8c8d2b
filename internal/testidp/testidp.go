// Package testidp is a local identity provider for tests: it serves a JWK
// Set over httptest on 127.0.0.1, counts the fetches, can be taken down,
// rotates keys, and mints RS256, ES256 and EdDSA tokens (and forged ones).
// It is test support only; nothing in the product imports it.
package testidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience are what the provider's tokens carry by default.
const (
	Issuer   = "https://idp.test/"
	Audience = "turnstile-test"
)

// Key is a signing key the provider holds.
type Key struct {
	Kid    string
	Method jwt.SigningMethod
	Priv   crypto.Signer
}

// Public is the key's public half.
func (k Key) Public() crypto.PublicKey { return k.Priv.Public() }

// Provider is the identity provider. Its methods are safe from any goroutine.
type Provider struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []Key
	rsaKeys int
	down    bool
	fetches atomic.Int64
}

var (
	rsaOnce sync.Once
	rsaPool []*rsa.PrivateKey
)

// rsaKey hands out pre-generated 2048-bit keys: generating them is slow
// under -race, and tests need a few. A provider's RSA keys are 0..3 (the
// n-th it adds); 4 is OtherRSA's, never published.
func rsaKey(i int) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for range 5 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaPool = append(rsaPool, k)
		}
	})
	return rsaPool[i]
}

// OtherRSA is an RSA key no provider publishes: the attacker's.
func OtherRSA() *rsa.PrivateKey { return rsaKey(4) }

// New starts a provider publishing an RS256 key "rsa-1" and an ES256 key
// "ec-1" over plain http on 127.0.0.1; it stops at the end of the test.
func New(t testing.TB) *Provider { return start(t, httptest.NewServer) }

// NewTLS is New over https, with a self-signed certificate for 127.0.0.1
// (CertPEM, for a client to trust).
func NewTLS(t testing.TB) *Provider { return start(t, httptest.NewTLSServer) }

// CertPEM is the https provider's certificate, PEM-encoded.
func (p *Provider) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
}

func start(t testing.TB, serve func(http.Handler) *httptest.Server) *Provider {
	t.Helper()
	p := &Provider{}
	p.srv = serve(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.Add("rsa-1", jwt.SigningMethodRS256)
	p.Add("ec-1", jwt.SigningMethodES256)
	return p
}

// URL is the JWK Set's URL (http://127.0.0.1:port/.well-known/jwks.json).
func (p *Provider) URL() string { return p.srv.URL + "/.well-known/jwks.json" }

// Fetches is the number of JWK Set requests served (or refused while down).
func (p *Provider) Fetches() int64 { return p.fetches.Load() }

// SetDown makes the JWK Set answer 503 (down) or serve again.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Add generates a key for method (RS256, ES256 or EdDSA), publishes it
// under kid and returns it.
func (p *Provider) Add(kid string, method jwt.SigningMethod) Key {
	var priv crypto.Signer
	switch method {
	case jwt.SigningMethodRS256:
		p.mu.Lock()
		p.rsaKeys++
		n := p.rsaKeys
		p.mu.Unlock()
		if n > 4 {
			panic("testidp: at most 4 RSA keys per provider")
		}
		priv = rsaKey(n - 1)
	case jwt.SigningMethodES256:
		priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwt.SigningMethodEdDSA:
		_, priv, _ = ed25519.GenerateKey(rand.Reader)
	default:
		panic("testidp: unsupported method " + method.Alg())
	}
	k := Key{Kid: kid, Method: method, Priv: priv}
	p.mu.Lock()
	p.keys = append(p.keys, k)
	p.mu.Unlock()
	return k
}

// Remove stops publishing kid.
func (p *Provider) Remove(kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, k := range p.keys {
		if k.Kid == kid {
			p.keys = append(p.keys[:i], p.keys[i+1:]...)
			return
		}
	}
}

// Key returns the published key kid.
func (p *Provider) Key(kid string) Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.Kid == kid {
			return k
		}
	}
	panic("testidp: no key " + kid)
}

// Claims are valid claims for user at the provider's issuer and audience,
// expiring in an hour.
func Claims(user string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": user, "iss": Issuer, "aud": Audience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": user + "-" + now.Format("150405.000000000")}
}

// Mint signs claims with the published key kid, naming kid in the header.
func (p *Provider) Mint(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	k := p.Key(kid)
	return Sign(t, k.Method, k.Priv, map[string]any{"kid": kid}, claims)
}

// MintUnknownKIDs is n tokens for user signed with the published key kid but
// each naming a fresh random kid in its header: a flood that makes a
// verifier look for keys the provider never published.
func (p *Provider) MintUnknownKIDs(t testing.TB, kid string, n int, user string) []string {
	t.Helper()
	k := p.Key(kid)
	tokens := make([]string, n)
	for i := range tokens {
		var id [8]byte
		rand.Read(id[:])
		tokens[i] = Sign(t, k.Method, k.Priv, map[string]any{"kid": base64.RawURLEncoding.EncodeToString(id[:])}, Claims(user))
	}
	return tokens
}

// Sign signs claims with method and key, setting header fields beside alg
// and typ: the way to forge a token.
func Sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// JWK is the public JWK of k, as a provider publishes it.
func JWK(k Key) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": k.Kid, "use": "sig", "alg": k.Method.Alg()}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := pub.Bytes() // 0x04 || x || y
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pub)
	}
	return m
}

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/.well-known/jwks.json" {
		http.NotFound(w, r)
		return
	}
	p.fetches.Add(1)
	p.mu.Lock()
	down := p.down
	keys := make([]map[string]any, 0, len(p.keys))
	for _, k := range p.keys {
		keys = append(keys, JWK(k))
	}
	p.mu.Unlock()
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}

package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/turnstile-push/turnstile/internal/testidp"
)

// idpTokens verifies the test IdP's tokens at the wall clock.
func idpTokens(t testing.TB, cfg JWKSConfig) (*testidp.Provider, *JWKS, *Tokens) {
	t.Helper()
	idp := testidp.New(t)
	cfg.URL = idp.URL()
	set := runJWKS(t, cfg)
	tok, err := NewJWKSTokens(set, TokenConfig{Issuer: testidp.Issuer, Audience: testidp.Audience})
	if err != nil {
		t.Fatal(err)
	}
	return idp, set, tok
}

func TestJWKSVerifiesEveryKeyType(t *testing.T) {
	idp, _, tok := idpTokens(t, JWKSConfig{MinRefetch: time.Millisecond})
	time.Sleep(2 * time.Millisecond)
	idp.Add("ed-1", jwt.SigningMethodEdDSA) // published after the first fetch
	for _, kid := range []string{"rsa-1", "ec-1", "ed-1"} {
		c, err := tok.Verify(idp.Mint(t, kid, testidp.Claims("maggie")))
		if err != nil || c.Subject != "maggie" {
			t.Errorf("%s: %+v, %v", kid, c, err)
		}
	}
}

// A new kid is accepted without restart: the first token naming it fetches
// the set again and waits for it.
func TestJWKSKeyRotation(t *testing.T) {
	idp, set, tok := idpTokens(t, JWKSConfig{MinRefetch: 20 * time.Millisecond})
	time.Sleep(30 * time.Millisecond)
	idp.Add("rsa-2", jwt.SigningMethodRS256)
	revoked := idp.Mint(t, "rsa-1", testidp.Claims("maggie"))
	idp.Remove("rsa-1")
	before := set.Stats().Fetches
	if _, err := tok.Verify(idp.Mint(t, "rsa-2", testidp.Claims("maggie"))); err != nil {
		t.Fatalf("rotated-in kid: %v", err)
	}
	if got := set.Stats().Fetches - before; got != 1 {
		t.Errorf("fetches for the new kid = %d, want 1", got)
	}
	// The removed kid is gone with that fetch: revocation works.
	if _, err := tok.Verify(revoked); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("removed kid: %v, want ErrUnknownKID", err)
	}
}

// 1,000 tokens with random kids, from 20 goroutines, cost at most one
// fetch per MinRefetch, not one per token.
func TestJWKSUnknownKIDFloodIsRateLimited(t *testing.T) {
	idp, set, tok := idpTokens(t, JWKSConfig{MinRefetch: time.Second})
	tokens := idp.MintUnknownKIDs(t, "rsa-1", 1000, "maggie")
	before := idp.Fetches()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(tokens); i += 20 {
				if _, err := tok.Verify(tokens[i]); errors.Is(err, ErrUnknownKID) {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(1100 * time.Millisecond) // let a deferred refetch run, so it is counted
	fetches := idp.Fetches() - before
	limit := 2 + int64(elapsed/time.Second)
	t.Logf("1000 random kids in %v: %d JWKS fetches (limit %d)", elapsed, fetches, limit)
	if refused != len(tokens) {
		t.Errorf("refused %d of %d", refused, len(tokens))
	}
	if fetches < 1 || fetches > limit {
		t.Errorf("fetches = %d, want 1..%d", fetches, limit)
	}
	if s := set.Stats(); s.Fetches != uint64(idp.Fetches()) {
		t.Errorf("Stats.Fetches %d, provider saw %d", s.Fetches, idp.Fetches())
	}
}

// The provider down: every refetch fails, the cached keys keep working.
func TestJWKSProviderDownKeepsCachedKeys(t *testing.T) {
	idp, set, tok := idpTokens(t, JWKSConfig{MinRefetch: 10 * time.Millisecond, Refresh: 20 * time.Millisecond})
	good := idp.Mint(t, "ec-1", testidp.Claims("maggie"))
	idp.SetDown(true)
	deadline := time.Now().Add(10 * time.Second)
	for set.Stats().Failures < 2 && time.Now().Before(deadline) {
		// An unknown kid forces refetches too.
		_, _ = tok.Verify(testidp.Sign(t, jwt.SigningMethodRS256, idp.Key("rsa-1").Priv, map[string]any{"kid": "nope"}, testidp.Claims("x")))
		time.Sleep(5 * time.Millisecond)
	}
	if s := set.Stats(); s.Failures < 2 || s.Keys != 2 {
		t.Fatalf("stats %+v: want 2+ failures, 2 keys kept", s)
	}
	if _, err := tok.Verify(good); err != nil {
		t.Fatalf("cached key while the provider is down: %v", err)
	}
	idp.SetDown(false)
}

func TestJWKSURLRule(t *testing.T) {
	for _, ok := range []string{"https://idp.example/.well-known/jwks.json", "http://127.0.0.1:8080/jwks", "http://127.1.2.3/jwks", "http://localhost:1/j", "http://[::1]:9/j"} {
		if _, err := NewJWKS(JWKSConfig{URL: ok}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "idp.example/jwks", "http://idp.example/jwks", "http://10.0.0.1/jwks", "ftp://idp.example/jwks", "https://user:pw@idp.example/jwks", "http://localhost.evil.example/j"} {
		if _, err := NewJWKS(JWKSConfig{URL: bad}); !errors.Is(err, ErrBadJWKSURL) {
			t.Errorf("%q: %v, want ErrBadJWKSURL", bad, err)
		}
	}
}

// jwksServer serves body as the JWK Set.
func jwksServer(t *testing.T, body func() string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body()) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestJWKSParsing(t *testing.T) {
	idp := testidp.New(t)
	good := testidp.JWK(idp.Key("rsa-1"))
	ec := testidp.JWK(idp.Key("ec-1"))
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallJWK := testidp.JWK(testidp.Key{Kid: "small", Method: jwt.SigningMethodRS256, Priv: small})
	offCurve := map[string]any{}
	for k, v := range ec {
		offCurve[k] = v
	}
	offCurve["kid"], offCurve["y"] = "off-curve", offCurve["x"]
	edit := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	keys := []map[string]any{
		good,
		smallJWK,
		offCurve,
		edit(good, "kid", "enc", "use", "enc"),
		edit(good, "kid", "ps", "alg", "PS256"),
		edit(ec, "kid", "p384", "crv", "P-384"),
		edit(good, "kid", ""),
		edit(ec, "kid", "dup"), edit(good, "kid", "dup"),
		{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		edit(ec, "kid", "ec-es256"),
	}
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	set := runJWKS(t, JWKSConfig{URL: jwksServer(t, func() string { return string(doc) })})
	got := *set.set.Load()
	if len(got) != 2 {
		t.Errorf("kept %d keys, want rsa-1 and ec-es256 only: %v", len(got), got)
	}
	for _, kid := range []string{"rsa-1", "ec-es256"} {
		if _, ok := got[kid]; !ok {
			t.Errorf("%s missing", kid)
		}
	}
}

func TestJWKSBadSetKeepsCachedKeys(t *testing.T) {
	idp := testidp.New(t)
	good, _ := json.Marshal(map[string]any{"keys": []any{testidp.JWK(idp.Key("rsa-1"))}})
	var mu sync.Mutex
	body := string(good)
	url := jwksServer(t, func() string { mu.Lock(); defer mu.Unlock(); return body })
	set := runJWKS(t, JWKSConfig{URL: url, MinRefetch: time.Millisecond})
	for _, bad := range []string{`{"keys":[]}`, `not json`, `{"keys":[{"kty":"oct","kid":"k","k":"AA"}]}`, `{"keys":[` + strings.Repeat(" ", MaxJWKSBytes) + `]}`} {
		mu.Lock()
		body = bad
		mu.Unlock()
		failures := set.Stats().Failures
		time.Sleep(2 * time.Millisecond)
		if _, ok := set.key("unknown"); ok {
			t.Fatal("unknown kid found")
		}
		if s := set.Stats(); s.Failures != failures+1 || s.Keys != 1 {
			t.Errorf("after %.20q: %+v, want one more failure and the key kept", bad, s)
		}
	}
}

func TestJWKSOverTLSAndRedirects(t *testing.T) {
	idp := testidp.New(t)
	doc, _ := json.Marshal(map[string]any{"keys": []any{testidp.JWK(idp.Key("ec-1"))}})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	t.Cleanup(tlsSrv.Close)
	client := tlsSrv.Client()
	set := runJWKS(t, JWKSConfig{URL: tlsSrv.URL, Client: client})
	if _, ok := set.key("ec-1"); !ok {
		t.Fatal("key over https missing")
	}
	// The default client refuses a redirect off https to a public host.
	redirect := httptest.NewServer(http.RedirectHandler("http://idp.example/jwks", http.StatusFound))
	t.Cleanup(redirect.Close)
	set2, err := NewJWKS(JWKSConfig{URL: redirect.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := set2.get(t.Context()); !errors.Is(err, ErrBadJWKSURL) {
		t.Errorf("redirect to plain http: %v, want ErrBadJWKSURL", err)
	}
}

// The lookup by kid on a cached key: lock- and allocation-free.
func BenchmarkJWKSKey(b *testing.B) {
	idp := testidp.New(b)
	set := runJWKS(b, JWKSConfig{URL: idp.URL()})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := set.key("rsa-1"); !ok {
			b.Fatal("missing")
		}
	}
}

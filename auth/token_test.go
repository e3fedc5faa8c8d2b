package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/turnstile-push/turnstile/internal/testidp"
)

// testNow is the fixed clock of token tests.
var testNow = time.Unix(1_800_000_000, 0)

func fixedClock() time.Time { return testNow }

// keys are the test's signing material: a verifier per key type, and for
// each a signer of good tokens.
type keys struct {
	secret    []byte
	edPriv    ed25519.PrivateKey
	edPEM     []byte
	otherEd   ed25519.PrivateKey
	hs, ed    *Tokens
	otherHMAC []byte

	idp                  *testidp.Provider // publishes rsa-1, ec-1, ed-1
	rsaPub, ecPub, edPub *Tokens           // verify-only, one fixed key each
	jwks                 *Tokens           // verify-only over idp's JWK Set
	set                  *JWKS
	otherRSA             *rsa.PrivateKey
	otherEC              *ecdsa.PrivateKey
	verifiers            map[string]*Tokens
	signers              map[string]signer
}

// signer signs claims the way a verifier's legitimate issuer does, with
// extra header fields.
type signer func(c jwt.MapClaims, header map[string]any) string

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{secret: []byte("0123456789abcdef0123456789abcdef"), otherHMAC: []byte("fedcba9876543210fedcba9876543210")}
	_, k.edPriv, _ = ed25519.GenerateKey(rand.Reader)
	_, k.otherEd, _ = ed25519.GenerateKey(rand.Reader)
	k.edPEM = edPEM(t, k.edPriv)
	cfg := TokenConfig{Now: fixedClock}
	var err error
	if k.hs, err = NewHS256(k.secret, cfg); err != nil {
		t.Fatal(err)
	}
	if k.ed, err = NewEdDSA(k.edPEM, cfg); err != nil {
		t.Fatal(err)
	}
	k.idp = testidp.New(t)
	k.idp.Add("ed-1", jwt.SigningMethodEdDSA)
	k.otherRSA = testidp.OtherRSA()
	k.otherEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, ecKey := k.idp.Key("rsa-1"), k.idp.Key("ec-1")
	if k.rsaPub, err = NewPublicKey(rsaKey.Public(), cfg); err != nil {
		t.Fatal(err)
	}
	if k.ecPub, err = NewPublicKey(ecKey.Public(), cfg); err != nil {
		t.Fatal(err)
	}
	if k.edPub, err = NewPublicKey(k.edPriv.Public(), cfg); err != nil {
		t.Fatal(err)
	}
	k.set = runJWKS(t, JWKSConfig{URL: k.idp.URL()})
	if k.jwks, err = NewJWKSTokens(k.set, cfg); err != nil {
		t.Fatal(err)
	}
	with := func(m jwt.SigningMethod, key any, kid string) signer {
		return func(c jwt.MapClaims, header map[string]any) string {
			h := map[string]any{}
			if kid != "" {
				h["kid"] = kid
			}
			for n, v := range header {
				h[n] = v
			}
			return testidp.Sign(t, m, key, h, c)
		}
	}
	k.verifiers = map[string]*Tokens{"hs": k.hs, "ed": k.ed, "rsa": k.rsaPub, "ec": k.ecPub, "edpub": k.edPub, "jwks": k.jwks}
	k.signers = map[string]signer{
		"hs":    with(jwt.SigningMethodHS256, k.secret, ""),
		"ed":    with(jwt.SigningMethodEdDSA, k.edPriv, ""),
		"rsa":   with(jwt.SigningMethodRS256, rsaKey.Priv, ""),
		"ec":    with(jwt.SigningMethodES256, ecKey.Priv, ""),
		"edpub": with(jwt.SigningMethodEdDSA, k.edPriv, ""),
		"jwks":  with(jwt.SigningMethodRS256, rsaKey.Priv, "rsa-1"),
	}
	return k
}

// runJWKS runs a JWKS until the end of the test and waits for its keys.
func runJWKS(t testing.TB, cfg JWKSConfig) *JWKS {
	t.Helper()
	set, err := NewJWKS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { set.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for set.Stats().Keys == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("JWKS at %s: no keys after 10s: %+v", cfg.URL, set.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return set
}

func edPEM(t testing.TB, priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// goodClaims are valid claims for the default config at testNow.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "maggie", "iss": "turnstile", "aud": "turnstile",
		"iat": testNow.Unix(), "exp": testNow.Add(time.Minute).Unix(), "jti": "x",
	}
}

func with(change func(jwt.MapClaims)) jwt.MapClaims {
	c := goodClaims()
	change(c)
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attack is a token that a verifier ("hs" or "ed") must refuse.
type attack struct {
	name, verifier, token string
	why                   error // the reason Verify must give, beside ErrInvalidToken
}

// attacks is the JWT attack table, shared with the /ws_ticket handler tests.
func attacks(t testing.TB, k *keys) []attack {
	hs := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodHS256, k.secret, c) }
	ed := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodEdDSA, k.edPriv, c) }
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims())
	pub := []byte(k.edPriv.Public().(ed25519.PublicKey))
	hugeClaims := with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("A", 1<<20) })
	valid := hs(goodClaims())
	header, payload, _ := strings.Cut(valid, ".")
	payload, _, _ = strings.Cut(payload, ".")

	var list []attack
	for _, v := range []string{"hs", "ed"} {
		list = append(list,
			attack{"alg none", v, none, jwt.ErrTokenSignatureInvalid},
			attack{"alg none unsigned with dot", v, strings.TrimSuffix(none, ".") + ".", jwt.ErrTokenSignatureInvalid},
		)
	}
	list = append(list,
		attack{"HS256 token at EdDSA verifier (public key as HMAC secret)", "ed", sign(t, jwt.SigningMethodHS256, pub, goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"HS256 token at EdDSA verifier (right HS secret)", "ed", hs(goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"EdDSA token at HS256 verifier", "hs", ed(goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"HS384 token at HS256 verifier", "hs", sign(t, jwt.SigningMethodHS384, k.secret, goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"wrong HMAC key", "hs", sign(t, jwt.SigningMethodHS256, k.otherHMAC, goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"wrong Ed25519 key", "ed", sign(t, jwt.SigningMethodEdDSA, k.otherEd, goodClaims()), jwt.ErrTokenSignatureInvalid},
		attack{"expired", "hs", hs(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Minute).Unix() })), jwt.ErrTokenExpired},
		attack{"expired past leeway", "ed", ed(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-6 * time.Second).Unix() })), jwt.ErrTokenExpired},
		attack{"nbf in the future", "hs", hs(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Minute).Unix() })), jwt.ErrTokenNotValidYet},
		attack{"iat in the future", "ed", ed(with(func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Hour).Unix() })), jwt.ErrTokenUsedBeforeIssued},
		attack{"wrong iss", "hs", hs(with(func(c jwt.MapClaims) { c["iss"] = "evil" })), jwt.ErrTokenInvalidIssuer},
		attack{"missing iss", "ed", ed(with(func(c jwt.MapClaims) { delete(c, "iss") })), jwt.ErrTokenRequiredClaimMissing},
		attack{"wrong aud", "ed", ed(with(func(c jwt.MapClaims) { c["aud"] = []string{"other", "another"} })), jwt.ErrTokenInvalidAudience},
		attack{"missing aud", "hs", hs(with(func(c jwt.MapClaims) { delete(c, "aud") })), jwt.ErrTokenRequiredClaimMissing},
		attack{"missing exp", "hs", hs(with(func(c jwt.MapClaims) { delete(c, "exp") })), jwt.ErrTokenRequiredClaimMissing},
		attack{"exp not a number", "hs", hs(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), jwt.ErrInvalidType},
		attack{"missing sub", "ed", ed(with(func(c jwt.MapClaims) { delete(c, "sub") })), ErrNoUser},
		attack{"1 MB token", "hs", hs(hugeClaims), ErrTokenTooLarge},
		attack{"1 MB garbage", "ed", strings.Repeat("a", 1<<20), ErrTokenTooLarge},
		attack{"empty", "hs", "", jwt.ErrTokenMalformed},
		attack{"not a jwt", "hs", "not a token", jwt.ErrTokenMalformed},
		attack{"garbage segments", "hs", "abc.def.ghi", jwt.ErrTokenMalformed},
		attack{"two segments", "ed", header + "." + payload, jwt.ErrTokenMalformed},
		attack{"four segments", "hs", valid + ".x", jwt.ErrTokenMalformed},
		attack{"signature stripped", "hs", header + "." + payload + ".", jwt.ErrTokenSignatureInvalid},
		attack{"payload not JSON", "hs", header + ".bm90IGpzb24." + strings.Repeat("A", 43), jwt.ErrTokenMalformed},
		attack{"padded base64", "hs", header + "=." + payload + "." + strings.SplitN(valid, ".", 3)[2], jwt.ErrTokenMalformed},
		attack{"tampered payload", "hs", header + "." + payload + "A." + strings.SplitN(valid, ".", 3)[2], jwt.ErrTokenMalformed},
		attack{"expired 1s ago (exp gets no leeway)", "hs", hs(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Second).Unix() })), jwt.ErrTokenExpired},
		attack{"exp is now", "ed", ed(with(func(c jwt.MapClaims) { c["exp"] = testNow.Unix() })), jwt.ErrTokenExpired},
	)
	return append(list, keyAttacks(t, k)...)
}

// keyAttacks are the attacks on every key type: the algorithm is pinned by
// the key, alg none never passes, a kid selects only a key of the set, an
// unknown crit header is refused, and the user claim is required.
func keyAttacks(t testing.TB, k *keys) []attack {
	rsaKey, ecKey, edKey := k.idp.Key("rsa-1"), k.idp.Key("ec-1"), k.idp.Key("ed-1")
	rsaPEM := pubPEMOf(t, rsaKey.Public())
	rsaDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	ecPEM := pubPEMOf(t, ecKey.Public())
	edPub := []byte(k.edPriv.Public().(ed25519.PublicKey))
	none := testidp.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": "rsa-1"}, goodClaims())
	hsWith := func(secret []byte, kid string) string {
		h := map[string]any{}
		if kid != "" {
			h["kid"] = kid
		}
		return testidp.Sign(t, jwt.SigningMethodHS256, secret, h, goodClaims())
	}
	forged := func(m jwt.SigningMethod, key any, header map[string]any) string {
		return testidp.Sign(t, m, key, header, goodClaims())
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	var list []attack
	for _, v := range []string{"rsa", "ec", "edpub", "jwks"} {
		list = append(list,
			attack{"alg none, kid of a real key", v, none, jwt.ErrTokenSignatureInvalid},
			attack{"HS256 with the RSA public key PEM as secret", v, hsWith(rsaPEM, "rsa-1"), jwt.ErrTokenSignatureInvalid},
			attack{"HS256 with the RSA public key DER as secret", v, hsWith(rsaDER, "rsa-1"), jwt.ErrTokenSignatureInvalid},
			attack{"HS256 with the EC public key PEM as secret", v, hsWith(ecPEM, "ec-1"), jwt.ErrTokenSignatureInvalid},
			attack{"HS256 with the Ed25519 public key as secret", v, hsWith(edPub, "ed-1"), jwt.ErrTokenSignatureInvalid},
			attack{"RS384 by the right RSA key", v, forged(jwt.SigningMethodRS384, rsaKey.Priv, map[string]any{"kid": "rsa-1"}), jwt.ErrTokenSignatureInvalid},
			attack{"PS256 by the right RSA key", v, forged(jwt.SigningMethodPS256, rsaKey.Priv, map[string]any{"kid": "rsa-1"}), jwt.ErrTokenSignatureInvalid},
		)
	}
	for _, v := range []string{"hs", "ed", "rsa", "ec", "edpub", "jwks"} {
		sign := k.signers[v]
		list = append(list,
			attack{"crit header, well signed", v, sign(goodClaims(), map[string]any{"crit": []string{"exp"}}), ErrCritHeader},
			attack{"crit header with an unknown extension", v, sign(goodClaims(), map[string]any{"crit": []string{"x-ext"}, "x-ext": true}), ErrCritHeader},
			attack{"empty crit header", v, sign(goodClaims(), map[string]any{"crit": []string{}}), ErrCritHeader},
			attack{"user claim missing", v, sign(with(func(c jwt.MapClaims) { delete(c, "sub") }), nil), ErrNoUser},
			attack{"user claim empty", v, sign(with(func(c jwt.MapClaims) { c["sub"] = "" }), nil), ErrNoUser},
			attack{"user claim a number", v, sign(with(func(c jwt.MapClaims) { c["sub"] = 42 }), nil), ErrNoUser},
			attack{"user claim an object", v, sign(with(func(c jwt.MapClaims) { c["sub"] = map[string]any{"id": "maggie"} }), nil), ErrNoUser},
			attack{"expired", v, sign(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Second).Unix() }), nil), jwt.ErrTokenExpired},
			attack{"wrong iss", v, sign(with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" }), nil), jwt.ErrTokenInvalidIssuer},
			attack{"wrong aud", v, sign(with(func(c jwt.MapClaims) { c["aud"] = "other" }), nil), jwt.ErrTokenInvalidAudience},
		)
	}
	list = append(list,
		attack{"RSA verifier: ES256 token", "rsa", forged(jwt.SigningMethodES256, ecKey.Priv, nil), jwt.ErrTokenSignatureInvalid},
		attack{"RSA verifier: another RSA key", "rsa", forged(jwt.SigningMethodRS256, k.otherRSA, nil), jwt.ErrTokenSignatureInvalid},
		attack{"EC verifier: RS256 token", "ec", forged(jwt.SigningMethodRS256, rsaKey.Priv, nil), jwt.ErrTokenSignatureInvalid},
		attack{"EC verifier: another P-256 key", "ec", forged(jwt.SigningMethodES256, k.otherEC, nil), jwt.ErrTokenSignatureInvalid},
		attack{"EC verifier: ES384 token by a P-384 key", "ec", forged(jwt.SigningMethodES384, p384, map[string]any{"kid": "ec-1"}), jwt.ErrTokenSignatureInvalid},
		attack{"Ed25519 verifier: another Ed25519 key", "edpub", forged(jwt.SigningMethodEdDSA, k.otherEd, nil), jwt.ErrTokenSignatureInvalid},
		attack{"Ed25519 verifier: RS256 token", "edpub", forged(jwt.SigningMethodRS256, rsaKey.Priv, nil), jwt.ErrTokenSignatureInvalid},
		attack{"fixed key: a kid selects nothing (path)", "rsa", forged(jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "../../../../etc/ssl/private/key.pem"}), jwt.ErrTokenSignatureInvalid},

		attack{"JWKS: no kid", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, nil), ErrNoKID},
		attack{"JWKS: kid not a string", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, map[string]any{"kid": 1}), ErrNoKID},
		attack{"JWKS: empty kid", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, map[string]any{"kid": ""}), ErrNoKID},
		attack{"JWKS: unknown kid", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, map[string]any{"kid": "rsa-9"}), ErrUnknownKID},
		attack{"JWKS: kid is a file path", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, map[string]any{"kid": "/etc/passwd"}), ErrUnknownKID},
		attack{"JWKS: kid is a URL", "jwks", forged(jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "https://evil.example/jwks.json"}), ErrUnknownKID},
		attack{"JWKS: jku to the attacker's set", "jwks", forged(jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "rsa-1", "jku": "https://evil.example/jwks.json"}), jwt.ErrTokenSignatureInvalid},
		attack{"JWKS: embedded jwk of the attacker's key", "jwks", forged(jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "rsa-1", "jwk": testidp.JWK(testidp.Key{Kid: "rsa-1", Method: jwt.SigningMethodRS256, Priv: k.otherRSA})}), jwt.ErrTokenSignatureInvalid},
		attack{"JWKS: ES256 token naming the RSA kid", "jwks", forged(jwt.SigningMethodES256, ecKey.Priv, map[string]any{"kid": "rsa-1"}), ErrWrongAlg},
		attack{"JWKS: RS256 token naming the EC kid", "jwks", forged(jwt.SigningMethodRS256, rsaKey.Priv, map[string]any{"kid": "ec-1"}), ErrWrongAlg},
		attack{"JWKS: EdDSA token naming the RSA kid", "jwks", forged(jwt.SigningMethodEdDSA, edKey.Priv, map[string]any{"kid": "rsa-1"}), ErrWrongAlg},
		attack{"JWKS: another RSA key under a real kid", "jwks", forged(jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "rsa-1"}), jwt.ErrTokenSignatureInvalid},
		attack{"JWKS: another P-256 key under a real kid", "jwks", forged(jwt.SigningMethodES256, k.otherEC, map[string]any{"kid": "ec-1"}), jwt.ErrTokenSignatureInvalid},
	)
	return list
}

func pubPEMOf(t testing.TB, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerifyRefusesAttacks(t *testing.T) {
	k := newKeys(t)
	for _, a := range attacks(t, k) {
		t.Run(a.name, func(t *testing.T) {
			v := k.verifiers[a.verifier]
			c, err := v.Verify(a.token)
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, a.why) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken because %v", c, err, a.why)
			}
			if !reflect.DeepEqual(c, Claims{}) {
				t.Errorf("claims leaked from a refused token: %+v", c)
			}
		})
	}
}

func TestVerifyTooLargeBeforeParsing(t *testing.T) {
	k := newKeys(t)
	_, err := k.hs.Verify(strings.Repeat("a", MaxTokenBytes+1))
	if !errors.Is(err, ErrTokenTooLarge) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrTokenTooLarge and ErrInvalidToken", err)
	}
	// A garbage token at the cap is parsed (and fails as malformed instead).
	_, err = k.hs.Verify(strings.Repeat("a", MaxTokenBytes))
	if errors.Is(err, ErrTokenTooLarge) || !errors.Is(err, jwt.ErrTokenMalformed) {
		t.Fatalf("err = %v, want malformed, not too large", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := newKeys(t)
	for name, tok := range map[string]*Tokens{"HS256": k.hs, "EdDSA": k.ed} {
		t.Run(name, func(t *testing.T) {
			if tok.Alg() != name {
				t.Errorf("Alg = %s", tok.Alg())
			}
			s, exp, err := tok.Sign("maggie")
			if err != nil {
				t.Fatal(err)
			}
			if want := testNow.Add(DefaultTokenTTL); !exp.Equal(want) {
				t.Errorf("expires = %v, want %v", exp, want)
			}
			c, err := tok.Verify(s)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "maggie" || !c.Expires.Equal(exp) || !c.IssuedAt.Equal(testNow) || len(c.ID) != 22 {
				t.Errorf("claims = %+v", c)
			}
			// Every claim the contract names is in the token.
			var mc jwt.MapClaims
			if _, _, err := jwt.NewParser().ParseUnverified(s, &mc); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"sub", "iss", "aud", "iat", "exp", "jti"} {
				if _, ok := mc[name]; !ok {
					t.Errorf("token lacks %q: %v", name, mc)
				}
			}
			// Two tokens never share a jti.
			s2, _, _ := tok.Sign("maggie")
			c2, _ := tok.Verify(s2)
			if c2.ID == c.ID {
				t.Error("jti repeated")
			}
		})
	}
}

// One rule for clock skew: the leeway forgives nbf and iat (an issuer's
// clock ahead of ours), never exp, whichever the verifier.
func TestVerifyLeeway(t *testing.T) {
	k := newKeys(t)
	for name, v := range k.verifiers {
		sign := k.signers[name]
		early := sign(with(func(c jwt.MapClaims) {
			c["nbf"] = testNow.Add(4 * time.Second).Unix()
			c["iat"] = testNow.Add(4 * time.Second).Unix()
		}), nil)
		if _, err := v.Verify(early); err != nil {
			t.Errorf("%s: nbf and iat 4s ahead with 5s leeway: %v", name, err)
		}
		tooEarly := sign(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(6 * time.Second).Unix() }), nil)
		if _, err := v.Verify(tooEarly); !errors.Is(err, jwt.ErrTokenNotValidYet) {
			t.Errorf("%s: nbf 6s ahead: %v, want not valid yet", name, err)
		}
		for _, ago := range []time.Duration{0, time.Second, 4 * time.Second} {
			expired := sign(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-ago).Unix() }), nil)
			if _, err := v.Verify(expired); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("%s: exp %v ago: %v, want expired", name, ago, err)
			}
		}
		fresh := sign(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(time.Second).Unix() }), nil)
		if _, err := v.Verify(fresh); err != nil {
			t.Errorf("%s: exp in 1s: %v", name, err)
		}
	}
	strict, err := NewHS256(k.secret, TokenConfig{Now: fixedClock, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	early := k.signers["hs"](with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(4 * time.Second).Unix() }), nil)
	if _, err := strict.Verify(early); !errors.Is(err, jwt.ErrTokenNotValidYet) {
		t.Errorf("nbf 4s ahead with 1s leeway: %v, want not valid yet", err)
	}
}

func TestTokenConfigIssuerAudience(t *testing.T) {
	k := newKeys(t)
	custom, err := NewHS256(k.secret, TokenConfig{Issuer: "me", Audience: "you", TTL: time.Hour, Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	s, exp, err := custom.Sign("bob")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(testNow.Add(time.Hour)) {
		t.Errorf("expires = %v", exp)
	}
	if _, err := custom.Verify(s); err != nil {
		t.Errorf("own token: %v", err)
	}
	// Same key, default iss/aud: refused.
	if _, err := k.hs.Verify(s); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token for iss=me at iss=turnstile verifier: %v", err)
	}
}

func TestNewTokensRefusesBadConfig(t *testing.T) {
	k := newKeys(t)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"short secret", second(NewHS256([]byte("too short"), TokenConfig{})), ErrShortSecret},
		{"31-byte secret", second(NewHS256(make([]byte, 31), TokenConfig{})), ErrShortSecret},
		{"leeway too big", second(NewHS256(k.secret, TokenConfig{Leeway: time.Minute})), ErrBadLeeway},
		{"negative leeway", second(NewHS256(k.secret, TokenConfig{Leeway: -time.Second})), ErrBadLeeway},
		{"negative ttl", second(NewEdDSA(k.edPEM, TokenConfig{TTL: -time.Second})), ErrBadTTL},
		{"not PEM", second(NewEdDSA([]byte("hello"), TokenConfig{})), ErrBadKey},
		{"public key PEM", second(NewEdDSA(pubPEM(t, k.edPriv), TokenConfig{})), ErrBadKey},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
		}
	}
}

func second(_ *Tokens, err error) error { return err }

func pubPEM(t testing.TB, priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestLoadEdDSAKeyFile(t *testing.T) {
	k := newKeys(t)
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, k.edPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadEdDSAKeyFile(path, TokenConfig{Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := tok.Sign("maggie")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.ed.Verify(s); err != nil {
		t.Errorf("token from the file's key at a verifier with the same key: %v", err)
	}
	if _, err := LoadEdDSAKeyFile(filepath.Join(t.TempDir(), "missing.pem"), TokenConfig{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestGenerateDevKey(t *testing.T) {
	a, err := GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateDevKey()
	if len(a) != MinSecretBytes || string(a) == string(b) {
		t.Fatalf("dev keys %x / %x", a, b)
	}
	if _, err := NewHS256(a, TokenConfig{}); err != nil {
		t.Fatal(err)
	}
}

// Sign and verify, HS256 beside EdDSA: go test ./auth -run x -bench . -benchmem
func BenchmarkSign(b *testing.B) {
	k := newKeys(b)
	for _, tok := range []*Tokens{k.hs, k.ed} {
		b.Run(tok.Alg(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tok.Sign("maggie"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Verify per key type, fixed keys beside the JWK Set (the lookup by kid
// must add no allocation): go test ./auth -run '^$' -bench Verify -benchmem
func BenchmarkVerify(b *testing.B) {
	k := newKeys(b)
	jwksES := func(c jwt.MapClaims, h map[string]any) string {
		return testidp.Sign(b, jwt.SigningMethodES256, k.idp.Key("ec-1").Priv, map[string]any{"kid": "ec-1"}, c)
	}
	for _, v := range []struct {
		name string
		tok  *Tokens
		sign signer
	}{
		{"HS256", k.hs, k.signers["hs"]},
		{"EdDSA", k.ed, k.signers["ed"]},
		{"RS256", k.rsaPub, k.signers["rsa"]},
		{"RS256-with-kid", k.rsaPub, k.signers["jwks"]}, // the JWKS token, at the fixed key: same bytes to parse
		{"ES256", k.ecPub, k.signers["ec"]},
		{"JWKS-RS256", k.jwks, k.signers["jwks"]},
		{"JWKS-ES256", k.jwks, jwksES},
	} {
		s := v.sign(goodClaims(), nil)
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.tok.Verify(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// What a forged token costs the server: refused by signature.
	forged := sign(b, jwt.SigningMethodHS256, k.otherHMAC, goodClaims())
	b.Run("HS256-forged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.hs.Verify(forged); err == nil {
				b.Fatal("forged token verified")
			}
		}
	})
	huge := strings.Repeat("a", 1<<20)
	b.Run("1MB-refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.hs.Verify(huge); err == nil {
				b.Fatal("1 MB token verified")
			}
		}
	})
}

func TestUserClaim(t *testing.T) {
	k := newKeys(t)
	byEmail, err := NewHS256(k.secret, TokenConfig{Now: fixedClock, UserClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	sign := k.signers["hs"]
	c, err := byEmail.Verify(sign(with(func(c jwt.MapClaims) { c["email"] = "maggie@example.com"; c["sub"] = "auth0|1" }), nil))
	if err != nil || c.Subject != "maggie@example.com" {
		t.Fatalf("email claim: %+v, %v", c, err)
	}
	for name, change := range map[string]func(jwt.MapClaims){
		"only sub":    func(c jwt.MapClaims) {},
		"empty email": func(c jwt.MapClaims) { c["email"] = "" },
		"email list":  func(c jwt.MapClaims) { c["email"] = []string{"a@example.com"} },
	} {
		if _, err := byEmail.Verify(sign(with(change), nil)); !errors.Is(err, ErrNoUser) || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrNoUser", name, err)
		}
	}
	// The server's own tokens carry the user under both names.
	s, _, err := byEmail.Sign("maggie@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := byEmail.Verify(s); err != nil || c.Subject != "maggie@example.com" {
		t.Fatalf("own token: %+v, %v", c, err)
	}
	if c, err := k.hs.Verify(s); err != nil || c.Subject != "maggie@example.com" {
		t.Fatalf("own token read by sub: %+v, %v", c, err)
	}
	for _, reserved := range []string{"exp", "iss", "aud", "nbf", "iat", "jti"} {
		if _, err := NewHS256(k.secret, TokenConfig{UserClaim: reserved}); !errors.Is(err, ErrBadUserClaim) {
			t.Errorf("UserClaim %q: %v, want ErrBadUserClaim", reserved, err)
		}
	}
}

func TestVerifyOnlyCannotSign(t *testing.T) {
	k := newKeys(t)
	for _, v := range []*Tokens{k.rsaPub, k.ecPub, k.edPub, k.jwks} {
		if v.CanSign() {
			t.Errorf("%s: CanSign", v.Alg())
		}
		if _, _, err := v.Sign("maggie"); !errors.Is(err, ErrVerifyOnly) {
			t.Errorf("%s: Sign = %v, want ErrVerifyOnly", v.Alg(), err)
		}
	}
	if _, err := NewHandlers(HandlerConfig{Users: DevUsers(), Tokens: k.rsaPub, Store: &fakeStore{}}); !errors.Is(err, ErrUsersNeedSigner) {
		t.Errorf("logins with a verify-only key: %v, want ErrUsersNeedSigner", err)
	}
	if k.rsaPub.Alg() != "RS256" || k.ecPub.Alg() != "ES256" || k.edPub.Alg() != "EdDSA" {
		t.Errorf("algs %s %s %s", k.rsaPub.Alg(), k.ecPub.Alg(), k.edPub.Alg())
	}
}

// The channels claim travels from Sign (TokenConfig.Channels) to Verify,
// under the configured name; a malformed one makes the token invalid.
func TestTokenChannelsClaim(t *testing.T) {
	secret := []byte(strings.Repeat("s", MinSecretBytes))
	signer, err := NewHS256(secret, TokenConfig{ChannelsClaim: "chans", Channels: []string{"news", "chat:*"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.Sign("maggie")
	if err != nil {
		t.Fatal(err)
	}
	c, err := signer.Verify(tok)
	if err != nil || !reflect.DeepEqual(c.Channels, []string{"news", "chat:*"}) {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// A verifier reading another claim name sees no channels.
	other, _ := NewHS256(secret, TokenConfig{})
	if c, err := other.Verify(tok); err != nil || c.Channels != nil {
		t.Fatalf("default claim name: %+v, %v", c, err)
	}
	plain, _ := NewHS256(secret, TokenConfig{})
	tok, _, _ = plain.Sign("maggie")
	if c, err := plain.Verify(tok); err != nil || c.Channels != nil {
		t.Fatalf("no channels: %+v, %v", c, err)
	}
	bad := jwt.MapClaims{"sub": "m", "iss": "turnstile", "aud": "turnstile", "exp": time.Now().Add(time.Minute).Unix(), "channels": "news"}
	badTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, bad).SignedString(secret)
	if _, err := plain.Verify(badTok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("channels as a string: %v", err)
	}
}

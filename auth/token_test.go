package auth

import (
	"crypto/ed25519"
	"crypto/rand"
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
)

// testNow is the fixed clock of token tests.
var testNow = time.Unix(1_800_000_000, 0)

func fixedClock() time.Time { return testNow }

// keys are the test's signing material.
type keys struct {
	secret    []byte
	edPriv    ed25519.PrivateKey
	edPEM     []byte
	otherEd   ed25519.PrivateKey
	hs, ed    *Tokens
	otherHMAC []byte
}

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
	return k
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
		attack{"exp not a number", "hs", hs(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), jwt.ErrTokenMalformed},
		attack{"missing sub", "ed", ed(with(func(c jwt.MapClaims) { delete(c, "sub") })), ErrInvalidToken},
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
	)
	return list
}

func TestVerifyRefusesAttacks(t *testing.T) {
	k := newKeys(t)
	for _, a := range attacks(t, k) {
		t.Run(a.name, func(t *testing.T) {
			v := map[string]*Tokens{"hs": k.hs, "ed": k.ed}[a.verifier]
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

func TestVerifyLeeway(t *testing.T) {
	k := newKeys(t)
	justExpired := sign(t, jwt.SigningMethodHS256, k.secret, with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-4 * time.Second).Unix() }))
	if _, err := k.hs.Verify(justExpired); err != nil {
		t.Errorf("expired 4s ago with 5s leeway: %v", err)
	}
	strict, err := NewHS256(k.secret, TokenConfig{Now: fixedClock, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Verify(justExpired); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("expired 4s ago with 1s leeway: %v, want expired", err)
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

func BenchmarkVerify(b *testing.B) {
	k := newKeys(b)
	for _, tok := range []*Tokens{k.hs, k.ed} {
		s, _, err := tok.Sign("maggie")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tok.Alg(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tok.Verify(s); err != nil {
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

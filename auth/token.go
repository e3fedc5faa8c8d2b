package auth

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits and defaults for tokens.
const (
	// MaxTokenBytes is the largest token Verify parses; longer ones are
	// refused before any decoding.
	MaxTokenBytes = 8 << 10
	// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 3.2).
	MinSecretBytes = 32
	// MaxLeeway is the most clock skew TokenConfig.Leeway may allow.
	MaxLeeway = 10 * time.Second

	DefaultIssuer   = "turnstile"
	DefaultAudience = "turnstile"
	DefaultTokenTTL = 15 * time.Minute
	DefaultLeeway   = 5 * time.Second
)

// TokenConfig configures Tokens. Its zero value works: issuer and audience
// "turnstile", 15 minutes of lifetime, 5 s of leeway, the user in "sub",
// the wall clock.
type TokenConfig struct {
	// Issuer and Audience are written into every token and required of every
	// token verified.
	Issuer, Audience string
	// TTL is the lifetime of a signed token.
	TTL time.Duration
	// Leeway is the clock skew forgiven on nbf and iat (an issuer whose
	// clock runs ahead); at most MaxLeeway. exp gets none: a token is
	// refused from its exp on, the end of the session it opens.
	Leeway time.Duration
	// UserClaim names the claim that holds the user (default "sub"), for
	// providers that put it elsewhere ("email", "preferred_username"). It
	// must hold a non-empty string. Sign writes it beside sub.
	UserClaim string
	// Now is the clock, for tests.
	Now func() time.Time
	// ChannelsClaim names the claim that lists the channels a token's
	// holder may subscribe to (default "channels"); Channels is what Sign
	// writes into it (nothing when empty).
	ChannelsClaim string
	Channels      []string
}

// DefaultChannelsClaim is TokenConfig.ChannelsClaim's default.
const DefaultChannelsClaim = "channels"

// DefaultUserClaim is the claim that names the user unless configured.
const DefaultUserClaim = "sub"

// Claims is what a verified token says.
type Claims struct {
	Subject  string // the user: the value of TokenConfig.UserClaim
	Expires  time.Time
	IssuedAt time.Time // zero if the token has no iat
	ID       string    // jti
	Channels []string  // the channels claim: names and prefix patterns
}

// Tokens verifies JWTs with one key, or the keys of a JWK Set, and signs
// them if it holds a private key. The algorithm is pinned by the key: HS256
// for a secret, EdDSA for Ed25519, RS256 for RSA, ES256 for P-256; no
// other is accepted, "none" never, and a kid never selects a file or URL.
// Sign and Verify are safe to call from many goroutines. Make one with
// NewHS256, NewEdDSA, LoadEdDSAKeyFile, NewPublicKey, LoadPublicKeyFile or
// NewJWKSTokens.
type Tokens struct {
	cfg     TokenConfig
	alg     string            // what Alg says
	method  jwt.SigningMethod // signs; nil for a verify-only key
	signKey any
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc // the key for a token, its algorithm checked
}

// GenerateDevKey returns a random 32-byte HS256 secret for -dev.
func GenerateDevKey() ([]byte, error) {
	key := make([]byte, MinSecretBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	return key, nil
}

// NewHS256 returns Tokens that sign and verify with HMAC-SHA256. The secret
// must be at least 32 bytes; it is copied.
func NewHS256(secret []byte, cfg TokenConfig) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w (got %d)", ErrShortSecret, len(secret))
	}
	key := append([]byte(nil), secret...)
	return newTokens(cfg, jwt.SigningMethodHS256, key, fixedKey(jwt.SigningMethodHS256, key))
}

// NewEdDSA returns Tokens that sign with the Ed25519 private key in
// pemPrivateKey (PKCS #8, "-----BEGIN PRIVATE KEY-----", as written by
// `openssl genpkey -algorithm ed25519`) and verify with its public half.
func NewEdDSA(pemPrivateKey []byte, cfg TokenConfig) (*Tokens, error) {
	priv, err := parseEdPrivatePEM(pemPrivateKey)
	if err != nil {
		return nil, err
	}
	return newTokens(cfg, jwt.SigningMethodEdDSA, priv, fixedKey(jwt.SigningMethodEdDSA, priv.Public()))
}

// LoadEdDSAKeyFile is NewEdDSA over the contents of a file. Its errors do
// not repeat the path: the caller names it (with its flag).
func LoadEdDSAKeyFile(path string, cfg TokenConfig) (*Tokens, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return NewEdDSA(data, cfg)
}

// NewPublicKey returns verify-only Tokens for pub: RSA (RS256), ECDSA
// P-256 (ES256) or Ed25519 (EdDSA). Sign fails with ErrVerifyOnly.
func NewPublicKey(pub crypto.PublicKey, cfg TokenConfig) (*Tokens, error) {
	method, err := methodFor(pub)
	if err != nil {
		return nil, err
	}
	return newTokens(cfg, nil, nil, fixedKey(method, pub), method.Alg())
}

// LoadPublicKeyFile is NewPublicKey over a PEM file (ParsePublicKeyPEM).
// Its errors do not repeat the path: the caller names it.
func LoadPublicKeyFile(path string, cfg TokenConfig) (*Tokens, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, err
	}
	return NewPublicKey(pub, cfg)
}

// NewJWKSTokens returns verify-only Tokens over a JWK Set: a token must name
// a kid the set holds, and its alg must be the one that key allows (RS256,
// ES256 or EdDSA). Sign fails with ErrVerifyOnly.
func NewJWKSTokens(set *JWKS, cfg TokenConfig) (*Tokens, error) {
	return newTokens(cfg, nil, nil, set.keyfunc, "RS256", "ES256", "EdDSA")
}

// fixedKey is the keyfunc of a single key: the token's alg must be method's.
// The parser's WithValidMethods already refused others; this is belt and
// braces, and the one place a kid is ignored rather than looked up.
func fixedKey(method jwt.SigningMethod, key any) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		if err := checkHeader(tok); err != nil {
			return nil, err
		}
		if tok.Method.Alg() != method.Alg() {
			return nil, ErrWrongAlg
		}
		return key, nil
	}
}

// keyfunc looks the token's kid up in the set; the key's type decides the
// algorithm, and the token's alg must be that one.
func (j *JWKS) keyfunc(tok *jwt.Token) (any, error) {
	if err := checkHeader(tok); err != nil {
		return nil, err
	}
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		return nil, ErrNoKID
	}
	k, ok := j.key(kid)
	if !ok {
		return nil, ErrUnknownKID
	}
	if tok.Method.Alg() != k.method.Alg() {
		return nil, ErrWrongAlg
	}
	return k.key, nil
}

// checkHeader refuses what the header may demand that we do not do: any
// crit extension (RFC 7515 4.1.11: a recipient that does not understand
// one must reject the token; we understand none).
func checkHeader(tok *jwt.Token) error {
	if _, ok := tok.Header["crit"]; ok {
		return ErrCritHeader
	}
	return nil
}

// registeredClaims are claims that cannot name the user.
var registeredClaims = map[string]bool{"iss": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true}

// newTokens fills cfg's defaults and builds the parser. method and signKey
// sign (nil: verify-only); algs are the algorithms verified, default
// method's alone.
func newTokens(cfg TokenConfig, method jwt.SigningMethod, signKey any, keyfunc jwt.Keyfunc, algs ...string) (*Tokens, error) {
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	switch {
	case cfg.TTL == 0:
		cfg.TTL = DefaultTokenTTL
	case cfg.TTL < 0:
		return nil, ErrBadTTL
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("%w (got %v)", ErrBadLeeway, cfg.Leeway)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = DefaultUserClaim
	}
	if cfg.ChannelsClaim == "" {
		cfg.ChannelsClaim = DefaultChannelsClaim
	}
	if registeredClaims[cfg.UserClaim] {
		return nil, fmt.Errorf("%w (got %q)", ErrBadUserClaim, cfg.UserClaim)
	}
	if len(algs) == 0 {
		algs = []string{method.Alg()}
	}
	t := &Tokens{cfg: cfg, alg: strings.Join(algs, ","), method: method, signKey: signKey, keyfunc: keyfunc}
	// golang-jwt checks exp and nbf only when present and iss and aud only
	// when asked: pin all of them, and the algorithms.
	t.parser = jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(cfg.Now),
	)
	return t, nil
}

// Alg is the JWT algorithm verified: "HS256", "EdDSA", "RS256", "ES256",
// or "RS256,ES256,EdDSA" for a JWK Set. Safe from any goroutine.
func (t *Tokens) Alg() string { return t.alg }

// CanSign says whether Sign works (the key is not verify-only). Safe from
// any goroutine.
func (t *Tokens) CanSign() bool { return t.method != nil }

// TTL is the lifetime of signed tokens. Safe from any goroutine.
func (t *Tokens) TTL() time.Duration { return t.cfg.TTL }

// Sign issues a token for sub with iss, aud, iat, exp and a random jti, and
// returns it with its expiry (whole seconds, as in the token). Safe to call
// from many goroutines.
func (t *Tokens) Sign(sub string) (token string, expires time.Time, err error) {
	if t.method == nil {
		return "", time.Time{}, ErrVerifyOnly
	}
	now := t.cfg.Now().Truncate(time.Second)
	expires = now.Add(t.cfg.TTL)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: jti: %w", err)
	}
	claims := jwt.RegisteredClaims{
		Subject:   sub,
		Issuer:    t.cfg.Issuer,
		Audience:  jwt.ClaimStrings{t.cfg.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	var c jwt.Claims = claims
	if extra := t.extraClaims(sub); len(extra) > 0 {
		c = withExtra{claims, extra}
	}
	token, err = jwt.NewWithClaims(t.method, c).SignedString(t.signKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return token, expires, nil
}

// errTooLarge is built once: refusing a huge token must cost next to nothing.
var errTooLarge = fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenTooLarge)

// Verify checks token's size, header (no crit), algorithm and key (pinned),
// signature, exp (required, exact), nbf and iat (if present, with leeway),
// iss, aud and the user claim (a non-empty string), and returns its claims.
// Every failure wraps ErrInvalidToken. Safe to call from many goroutines.
func (t *Tokens) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenBytes {
		return Claims{}, errTooLarge
	}
	var mc jwt.MapClaims
	if _, err := t.parser.ParseWithClaims(token, &mc, t.keyfunc); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c, err := t.claimsOf(mc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
}

package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
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
// "turnstile", 15 minutes of lifetime, 5 s of leeway, the wall clock.
type TokenConfig struct {
	// Issuer and Audience are written into every token and required of every
	// token verified.
	Issuer, Audience string
	// TTL is the lifetime of a signed token.
	TTL time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; at most MaxLeeway.
	Leeway time.Duration
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

// Claims is what a verified token says.
type Claims struct {
	Subject  string
	Expires  time.Time
	IssuedAt time.Time // zero if the token has no iat
	ID       string    // jti
	Channels []string  // the channels claim: names and prefix patterns
}

// Tokens signs and verifies JWTs with one algorithm, HS256 or EdDSA, and
// accepts no other. Sign and Verify are safe to call from many goroutines.
// Make one with NewHS256, NewEdDSA or LoadEdDSAKeyFile.
type Tokens struct {
	cfg       TokenConfig
	method    jwt.SigningMethod
	signKey   any
	verifyKey any
	parser    *jwt.Parser
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
	return newTokens(jwt.SigningMethodHS256, key, key, cfg)
}

// NewEdDSA returns Tokens that sign with the Ed25519 private key in
// pemPrivateKey (PKCS #8, "-----BEGIN PRIVATE KEY-----", as written by
// `openssl genpkey -algorithm ed25519`) and verify with its public half.
func NewEdDSA(pemPrivateKey []byte, cfg TokenConfig) (*Tokens, error) {
	key, err := jwt.ParseEdPrivateKeyFromPEM(pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, ErrBadKey
	}
	return newTokens(jwt.SigningMethodEdDSA, priv, priv.Public(), cfg)
}

// LoadEdDSAKeyFile is NewEdDSA over the contents of a file.
func LoadEdDSAKeyFile(path string, cfg TokenConfig) (*Tokens, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: jwt key: %w", err)
	}
	t, err := NewEdDSA(pem, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func newTokens(method jwt.SigningMethod, signKey, verifyKey any, cfg TokenConfig) (*Tokens, error) {
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
	if cfg.ChannelsClaim == "" {
		cfg.ChannelsClaim = DefaultChannelsClaim
	}
	t := &Tokens{cfg: cfg, method: method, signKey: signKey, verifyKey: verifyKey}
	// golang-jwt checks exp and nbf only when present and iss and aud only
	// when asked: pin all of them, and the one algorithm.
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{method.Alg()}),
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

// Alg is the JWT algorithm, "HS256" or "EdDSA". Safe from any goroutine.
func (t *Tokens) Alg() string { return t.method.Alg() }

// TTL is the lifetime of signed tokens. Safe from any goroutine.
func (t *Tokens) TTL() time.Duration { return t.cfg.TTL }

// Sign issues a token for sub with iss, aud, iat, exp and a random jti, and
// returns it with its expiry (whole seconds, as in the token). Safe to call
// from many goroutines.
func (t *Tokens) Sign(sub string) (token string, expires time.Time, err error) {
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
	var signed jwt.Claims = claims
	if len(t.cfg.Channels) > 0 {
		signed = withChannels{claims, t.cfg.ChannelsClaim, t.cfg.Channels}
	}
	token, err = jwt.NewWithClaims(t.method, signed).SignedString(t.signKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return token, expires, nil
}

// errTooLarge is built once: refusing a huge token must cost next to nothing.
var errTooLarge = fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenTooLarge)

// Verify checks token's size, algorithm, signature, exp (required), nbf and
// iat (if present), iss, aud and sub (required), and returns its claims.
// Every failure wraps ErrInvalidToken. Safe to call from many goroutines.
func (t *Tokens) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenBytes {
		return Claims{}, errTooLarge
	}
	var tc tokenClaims
	tc.channelsClaim = t.cfg.ChannelsClaim
	_, err := t.parser.ParseWithClaims(token, &tc, t.key)
	rc := &tc.RegisteredClaims
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if rc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: no sub", ErrInvalidToken)
	}
	if rc.ExpiresAt == nil { // the parser requires exp; never trust one option alone
		return Claims{}, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	c := Claims{Subject: rc.Subject, Expires: rc.ExpiresAt.Time, ID: rc.ID, Channels: tc.channels}
	if rc.IssuedAt != nil {
		c.IssuedAt = rc.IssuedAt.Time
	}
	return c, nil
}

// key hands the parser the verification key, but only for our algorithm; the
// parser's WithValidMethods already refused others, this is belt and braces.
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	if tok.Method.Alg() != t.method.Alg() {
		return nil, fmt.Errorf("unexpected alg %q", tok.Method.Alg())
	}
	return t.verifyKey, nil
}

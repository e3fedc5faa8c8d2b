package auth

import "errors"

// Errors returned by this package. They are built once; callers compare them
// with errors.Is.
var (
	// ErrBadCredentials is a wrong password or an unknown user: one error for
	// both, so that a caller cannot tell them apart.
	ErrBadCredentials = errors.New("auth: wrong user or password")
	// ErrPasswordTooLong is a password over 72 bytes, the most bcrypt reads.
	// It is refused rather than silently truncated.
	ErrPasswordTooLong = errors.New("auth: password longer than 72 bytes")

	// ErrMalformedLine is an htpasswd line that is not "user:hash".
	ErrMalformedLine = errors.New("malformed line, want user:hash")
	// ErrUnsupportedHash is an htpasswd entry whose hash is not bcrypt
	// ($2a$, $2b$, $2y$), or is a bcrypt hash that does not parse.
	ErrUnsupportedHash = errors.New("unsupported hash, want bcrypt ($2y$, $2a$ or $2b$; htpasswd -B)")
	// ErrDuplicateUser is a user listed twice in one htpasswd file.
	ErrDuplicateUser = errors.New("duplicate user")
	// ErrNoUsers is an htpasswd file without a single entry.
	ErrNoUsers = errors.New("no users")

	// ErrInvalidToken is any JWT that does not verify: malformed, wrongly
	// signed, with another algorithm, expired, not yet valid, for another
	// issuer or audience, without exp or sub, or too large.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrTokenTooLarge is a token over MaxTokenBytes; it is refused before
	// any parsing. It is always wrapped together with ErrInvalidToken.
	ErrTokenTooLarge = errors.New("auth: token larger than 8 KiB")
	// ErrShortSecret is an HS256 secret under MinSecretBytes.
	ErrShortSecret = errors.New("auth: HS256 secret must be at least 32 bytes")
	// ErrBadKey is a PEM file that does not hold an Ed25519 private key.
	ErrBadKey = errors.New("auth: not a PEM Ed25519 private key (PKCS #8)")
	// ErrBadPublicKey is a file or JWK that does not hold a public key of
	// a supported type (RSA of 2048 bits or more, ECDSA P-256, Ed25519).
	ErrBadPublicKey = errors.New("auth: not a supported public key")
	// ErrVerifyOnly is Sign on Tokens that hold only a public key.
	ErrVerifyOnly = errors.New("auth: verify-only key: cannot sign tokens")
	// ErrBadUserClaim is a TokenConfig.UserClaim naming a registered claim.
	ErrBadUserClaim = errors.New("auth: user claim must be a claim name other than iss, aud, exp, nbf, iat and jti")

	// Reasons a token is refused, wrapped together with ErrInvalidToken.
	// ErrNoKID is a token without kid at a JWKS verifier: it must name a key.
	ErrNoKID = errors.New("auth: token names no kid")
	// ErrUnknownKID is a kid the JWK Set does not hold, even after a refetch.
	ErrUnknownKID = errors.New("auth: kid not in the JWK Set")
	// ErrWrongAlg is a token whose alg is not the one its key allows.
	ErrWrongAlg = errors.New("auth: alg does not match the key")
	// ErrCritHeader is a token with a crit header (RFC 7515 4.1.11): it
	// names extensions that must be understood, and we understand none.
	ErrCritHeader = errors.New("auth: token has a crit header")
	// ErrNoUser is a token whose user claim is missing, empty or not a string.
	ErrNoUser = errors.New("auth: user claim missing, empty or not a string")

	// ErrBadJWKSURL is a JWKS URL that is not https:// (or http:// to a
	// loopback host).
	ErrBadJWKSURL = errors.New("auth: JWKS URL must be https:// (plain http:// only for localhost or 127.0.0.0/8, ::1)")
	// ErrNoUsableKeys is a fetched JWK Set without one key we can verify
	// with; the cached set is kept.
	ErrNoUsableKeys = errors.New("auth: JWK Set has no usable signing key (RSA, EC P-256 or Ed25519 with a kid)")
	// ErrBadLeeway is a negative clock-skew leeway or one over MaxLeeway.
	ErrBadLeeway = errors.New("auth: JWT leeway must be between 0 and 10s")
	// ErrBadTTL is a negative token lifetime.
	ErrBadTTL = errors.New("auth: token TTL must be positive")

	// ErrNoTokens and ErrNoStore are a HandlerConfig without Tokens or Store.
	ErrNoTokens = errors.New("auth: handlers need Tokens")
	ErrNoStore  = errors.New("auth: handlers need a ticket Store")
	// ErrUsersNeedSigner is a HandlerConfig with Users but verify-only
	// Tokens: /auth could check passwords but issue no token.
	ErrUsersNeedSigner = errors.New("auth: logins need a signing key (HS256 secret or Ed25519 private key), not a verify-only one")
	// ErrBadWSURL is a HandlerConfig.WSURL that is not an absolute ws:// or
	// wss:// URL without query or fragment.
	ErrBadWSURL = errors.New("auth: ws URL must be ws:// or wss://host/path without query")
)

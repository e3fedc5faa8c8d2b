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
	// ErrBadLeeway is a negative clock-skew leeway or one over MaxLeeway.
	ErrBadLeeway = errors.New("auth: JWT leeway must be between 0 and 10s")
	// ErrBadTTL is a negative token lifetime.
	ErrBadTTL = errors.New("auth: token TTL must be positive")

	// ErrNoTokens and ErrNoStore are a HandlerConfig without Tokens or Store.
	ErrNoTokens = errors.New("auth: handlers need Tokens")
	ErrNoStore  = errors.New("auth: handlers need a ticket Store")
	// ErrBadWSURL is a HandlerConfig.WSURL that is not an absolute ws:// or
	// wss:// URL without query or fragment.
	ErrBadWSURL = errors.New("auth: ws URL must be ws:// or wss://host/path without query")
)

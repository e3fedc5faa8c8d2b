package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// verifyKey is a public key and the one algorithm it verifies.
type verifyKey struct {
	method jwt.SigningMethod
	key    any
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518 6, 8037) we read.
// Private members ("d", …) are never read: only the public half is used.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// errSkip marks a JWK we do not use (an encryption key, another algorithm):
// a JWK Set may hold those beside the signing keys.
var errSkip = errors.New("not a signing key we verify with")

// verifyKey returns the key and its pinned algorithm. The JWK's "alg", when
// present, must name that same algorithm; "use", when present, must be "sig".
func (k jwk) verifyKey() (verifyKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return verifyKey{}, fmt.Errorf("%w: use %q", errSkip, k.Use)
	}
	var pub any
	var err error
	switch k.Kty {
	case "RSA":
		pub, err = rsaFromJWK(k.N, k.E)
	case "EC":
		if k.Crv != "P-256" {
			return verifyKey{}, fmt.Errorf("%w: EC curve %q (ES256 needs P-256)", errSkip, k.Crv)
		}
		pub, err = p256FromJWK(k.X, k.Y)
	case "OKP":
		if k.Crv != "Ed25519" {
			return verifyKey{}, fmt.Errorf("%w: OKP curve %q", errSkip, k.Crv)
		}
		var x []byte
		if x, err = b64(k.X); err == nil && len(x) != ed25519.PublicKeySize {
			err = fmt.Errorf("Ed25519 x of %d bytes", len(x))
		}
		pub = ed25519.PublicKey(x)
	default:
		return verifyKey{}, fmt.Errorf("%w: kty %q", errSkip, k.Kty)
	}
	if err != nil {
		return verifyKey{}, fmt.Errorf("%w: %s key: %v", ErrBadPublicKey, k.Kty, err)
	}
	method, err := methodFor(pub)
	if err != nil {
		return verifyKey{}, err
	}
	// RFC 9864 names the Ed25519 algorithm "Ed25519"; RFC 8037 "EdDSA".
	if alg := k.Alg; alg != "" && alg != method.Alg() && !(alg == "Ed25519" && method == jwt.SigningMethodEdDSA) {
		return verifyKey{}, fmt.Errorf("%w: alg %q on a %s key", errSkip, alg, k.Kty)
	}
	return verifyKey{method: method, key: pub}, nil
}

// b64 decodes base64url without padding, tolerating padding that some
// providers add.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func rsaFromJWK(n64, e64 string) (*rsa.PublicKey, error) {
	n, err := b64(n64)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad n")
	}
	e, err := b64(e64)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad e")
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp&1 == 0 {
		return nil, fmt.Errorf("exponent %d", exp)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func p256FromJWK(x64, y64 string) (*ecdsa.PublicKey, error) {
	x, errX := b64(x64)
	y, errY := b64(y64)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("P-256 x and y must be 32 bytes each")
	}
	// ParseUncompressedPublicKey refuses a point not on the curve (an
	// invalid-curve attack key).
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}

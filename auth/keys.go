package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// MinRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const MinRSABits = 2048

// methodFor is the one algorithm a public key allows: the key type decides,
// never the token. An RSA key verifies RS256 only (so never HS256 with the
// key as an HMAC secret), a P-256 key ES256, an Ed25519 key EdDSA.
func methodFor(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrBadPublicKey, k.N.BitLen(), MinRSABits)
		}
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA key on %s, want P-256 (ES256)", ErrBadPublicKey, k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadPublicKey, len(k))
		}
		return jwt.SigningMethodEdDSA, nil
	}
	return nil, fmt.Errorf("%w: %T, want RSA, ECDSA P-256 or Ed25519", ErrBadPublicKey, pub)
}

// privateBlocks are the PEM types of private keys, named so that a private
// key handed where a public one belongs (or the reverse) is told so.
var privateBlocks = map[string]string{
	"PRIVATE KEY":           "a private key",
	"RSA PRIVATE KEY":       "an RSA private key",
	"EC PRIVATE KEY":        "an EC private key",
	"OPENSSH PRIVATE KEY":   "an OpenSSH private key",
	"ENCRYPTED PRIVATE KEY": "an encrypted private key",
}

// onePEM decodes the single PEM block of data. Its errors say what the
// file holds instead, never an ASN.1 dump.
func onePEM(data []byte) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM: want a file starting with -----BEGIN …-----")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if next, _ := pem.Decode(rest); next != nil {
			return nil, fmt.Errorf("holds more than one PEM block (%s, then %s): want exactly one key", block.Type, next.Type)
		}
	}
	return block, nil
}

// ParsePublicKeyPEM reads a PEM public key: "PUBLIC KEY" (PKIX, as written
// by `openssl pkey -pubout`), "RSA PUBLIC KEY" (PKCS #1) or a
// "CERTIFICATE" (its subject key, as some providers publish it). The key
// must be RSA (2048 bits or more), ECDSA P-256 or Ed25519. Safe from any
// goroutine.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, err := onePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPublicKey, err)
	}
	var pub crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if what, ok := privateBlocks[block.Type]; ok {
			return nil, fmt.Errorf("%w: the file holds %s; give only its public half (openssl pkey -in key.pem -pubout -out public.pem)", ErrBadPublicKey, what)
		}
		return nil, fmt.Errorf("%w: PEM block %q, want PUBLIC KEY (RSA, ECDSA P-256 or Ed25519)", ErrBadPublicKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the %s block does not parse (damaged, or an unsupported key type)", ErrBadPublicKey, block.Type)
	}
	if _, err := methodFor(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// parseEdPrivatePEM reads the Ed25519 private key of -jwt-key, saying what
// the file holds when it is something else.
func parseEdPrivatePEM(data []byte) (ed25519.PrivateKey, error) {
	block, err := onePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("%w: the file holds a public key (%s), which cannot sign; to verify only, give it to -jwt-public-key", ErrBadKey, block.Type)
	default:
		if what, ok := privateBlocks[block.Type]; ok {
			return nil, fmt.Errorf("%w: the file holds %s (%s); create an Ed25519 key with openssl genpkey -algorithm ed25519", ErrBadKey, what, block.Type)
		}
		return nil, fmt.Errorf("%w: PEM block %q, want PRIVATE KEY", ErrBadKey, block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: the PRIVATE KEY block does not parse (damaged, or an unsupported key type)", ErrBadKey)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: the file holds %s private key, want Ed25519 (openssl genpkey -algorithm ed25519)", ErrBadKey, keyKind(key))
	}
	return priv, nil
}

func keyKind(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey:
		return "an RSA"
	case *ecdsa.PrivateKey:
		return "an ECDSA"
	}
	return fmt.Sprintf("a %T", key)
}

// readKeyFile reads a key file; a missing or unreadable file says why
// without repeating the path, which the caller names with its flag.
func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("cannot read: %w", pe.Err)
	}
	return data, err
}

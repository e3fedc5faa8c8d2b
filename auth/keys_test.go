package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-push/turnstile/internal/testidp"
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePublicKeyPEM(t *testing.T) {
	rsaKey := testidp.OtherRSA()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rsaKey.Public(), rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	pkix1, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	pkixEC, _ := x509.MarshalPKIXPublicKey(ecKey.Public())
	for name, data := range map[string][]byte{
		"PKIX RSA":       pemOf("PUBLIC KEY", pkix1),
		"PKCS #1 RSA":    pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)),
		"certificate":    pemOf("CERTIFICATE", cert),
		"PKIX P-256":     pemOf("PUBLIC KEY", pkixEC),
		"PKIX Ed25519":   pubPEM(t, newKeys(t).edPriv),
		"trailing space": append(pemOf("PUBLIC KEY", pkixEC), "\n\n  \n"...),
	} {
		if _, err := ParsePublicKeyPEM(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(small.Public())
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(p384.Public())
	privDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not PEM", []byte("hello"), "not PEM"},
		{"private key", pemOf("PRIVATE KEY", privDER), "public half"},
		{"RSA private key", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "public half"},
		{"two blocks", append(pemOf("PUBLIC KEY", pkixEC), pemOf("PUBLIC KEY", pkix1)...), "more than one"},
		{"1024-bit RSA", pemOf("PUBLIC KEY", smallDER), "at least 2048"},
		{"P-384", pemOf("PUBLIC KEY", p384DER), "P-256"},
		{"damaged", pemOf("PUBLIC KEY", []byte{0x30, 0x03, 1, 2, 3}), "does not parse"},
		{"other block", pemOf("X509 CRL", []byte{1}), "want PUBLIC KEY"},
	} {
		_, err := ParsePublicKeyPEM(tc.data)
		if !errors.Is(err, ErrBadPublicKey) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadPublicKey saying %q", tc.name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "asn1") || strings.Contains(err.Error(), "structure error")) {
			t.Errorf("%s: ASN.1 detail in %q", tc.name, err)
		}
	}
}

func TestEdDSAKeyErrorsSayWhatWasExpected(t *testing.T) {
	k := newKeys(t)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(testidp.OtherRSA())
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"public key", pubPEM(t, k.edPriv), "-jwt-public-key"},
		{"RSA private key", pemOf("PRIVATE KEY", rsaDER), "an RSA private key, want Ed25519"},
		{"damaged", pemOf("PRIVATE KEY", []byte{0x30, 0x01, 0}), "does not parse"},
	} {
		_, err := NewEdDSA(tc.data, TokenConfig{})
		if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "asn1") {
			t.Errorf("%s: %v, want ErrBadKey saying %q", tc.name, err, tc.want)
		}
	}
}

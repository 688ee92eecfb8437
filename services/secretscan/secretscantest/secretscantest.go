// Package secretscantest signs requests the way GitHub's secret scanning
// does, with keys of its own, and publishes them in GitHub's key-list
// format: keymint's test machines cannot reach GitHub.
package secretscantest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"testing"
)

// Key is one ECDSA P-256 signing key and its identifier.
type Key struct {
	// ID is what GitHub sends as Github-Public-Key-Identifier (a hex
	// digest, as GitHub's are).
	ID   string
	priv *ecdsa.PrivateKey
}

// NewKey generates a key.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &Key{ID: hex.EncodeToString(sum[:]), priv: priv}
}

// PublicPEM is the public key as GitHub publishes it.
func (k *Key) PublicPEM(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Sign is the Github-Public-Key-Signature of body: base64 of the ASN.1
// DER ECDSA signature over its SHA-256.
func (k *Key) Sign(t testing.TB, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// KeyList is GitHub's published list of keys, current marking the one
// that signs now.
func KeyList(t testing.TB, current *Key, keys ...*Key) []byte {
	t.Helper()
	type entry struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	}
	var l struct {
		PublicKeys []entry `json:"public_keys"`
	}
	for _, k := range keys {
		l.PublicKeys = append(l.PublicKeys, entry{KeyIdentifier: k.ID, Key: k.PublicPEM(t), IsCurrent: k == current})
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

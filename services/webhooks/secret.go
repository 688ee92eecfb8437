// Package webhooks delivers keymint's events to the URLs organizations
// register: signing secrets sealed at rest, Standard Webhooks signatures, an
// HTTP sender that refuses private addresses at every dial, the outbox
// dispatcher (leases, retries with backoff, order per subject, disabling
// endpoints that keep failing), the expiry scheduler, and the admin API.
package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the webhook key's length: AES-256.
const KeySize = 32

// SecretPrefix starts every signing secret, as Standard Webhooks has it.
const SecretPrefix = "whsec_"

// Sealer encrypts signing secrets at rest with AES-256-GCM under the
// webhook key. keymint must sign with the secret, so it cannot keep a hash
// of it as it does for tokens; sealing keeps a database dump from giving it
// away. The endpoint id is the additional data, so a sealed secret copied
// to another row does not open.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer under key (KeySize bytes).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("webhook key: want %d bytes, have %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts secret for endpoint id: a random nonce, then the ciphertext.
func (s *Sealer) Seal(secret, id string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal webhook secret: %w", err)
	}
	return s.aead.Seal(nonce, nonce, []byte(secret), []byte(id)), nil
}

// Open decrypts what Seal made for endpoint id.
func (s *Sealer) Open(sealed []byte, id string) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("open webhook secret: too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("open webhook secret of endpoint %s: wrong webhook key or damaged row", id)
	}
	return string(plain), nil
}

// NewSecret returns a fresh signing secret: whsec_ and 32 random bytes in
// base64.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseKey decodes a webhook key given as base64 (standard or URL alphabet,
// padded or not) of KeySize bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("webhook key: want %d bytes in base64, have %d", KeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("webhook key: not base64")
}

// LoadOrCreateKeyFile reads the key at path, generating it (0600) if the
// file does not exist: the embedded store keeps its key beside the pepper.
// created reports a new key.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := ParseKey(string(b))
		return key, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read webhook key: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate webhook key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create webhook key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create webhook key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write webhook key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write webhook key: %w", err)
	}
	return key, true, nil
}

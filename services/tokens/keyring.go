package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Pepper is one server-side HMAC key with the id stored beside each digest.
type Pepper struct {
	ID  string
	Key []byte
}

// Keyring holds the peppers tokens are hashed with. The first is primary:
// new tokens are hashed with it. The others still verify older tokens, so a
// pepper can rotate without invalidating tokens.
type Keyring struct {
	peppers []Pepper
	pools   []sync.Pool // one HMAC state pool per pepper: the hot path reuses them
}

// MinPepperLen is the shortest key accepted: a pepper is a 256-bit secret.
const MinPepperLen = 32

// NewKeyring returns a key ring; peppers[0] is primary.
func NewKeyring(peppers []Pepper) (*Keyring, error) {
	if len(peppers) == 0 {
		return nil, fmt.Errorf("pepper key ring is empty")
	}
	seen := map[string]bool{}
	k := &Keyring{peppers: peppers, pools: make([]sync.Pool, len(peppers))}
	for i, p := range peppers {
		if p.ID == "" || strings.ContainsAny(p.ID, ":, \t\r\n") {
			return nil, fmt.Errorf("pepper %d: id must be non-empty, without ':', ',' or spaces", i+1)
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("pepper id %q appears twice", p.ID)
		}
		seen[p.ID] = true
		if len(p.Key) < MinPepperLen {
			return nil, fmt.Errorf("pepper %q: key is %d bytes, need at least %d", p.ID, len(p.Key), MinPepperLen)
		}
		key := p.Key
		k.pools[i].New = func() any { return &hmacState{h: hmac.New(sha256.New, key)} }
	}
	return k, nil
}

// ParseKeyring reads peppers written as `id:base64key`, separated by newlines
// or commas, primary first. Blank lines and lines starting with # are skipped.
// Errors never include key material.
func ParseKeyring(text string) (*Keyring, error) {
	var entries []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, strings.Split(line, ",")...)
		}
	}
	var peppers []Pepper
	for _, line := range entries {
		line = strings.TrimSpace(line)
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("pepper %d: want id:base64key", len(peppers)+1)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(b64))
		}
		if err != nil {
			return nil, fmt.Errorf("pepper %q: key is not base64", strings.TrimSpace(id))
		}
		peppers = append(peppers, Pepper{ID: strings.TrimSpace(id), Key: key})
	}
	return NewKeyring(peppers)
}

// GeneratePepperFile returns the text of a new one-pepper key ring file.
func GeneratePepperFile(id string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate pepper: %w", err)
	}
	return "# keymint pepper key ring: id:base64key, primary first. Keep secret.\n" +
		id + ":" + base64.StdEncoding.EncodeToString(key) + "\n", nil
}

// PrimaryID is the id of the pepper new tokens are hashed with.
func (k *Keyring) PrimaryID() string { return k.peppers[0].ID }

// hmacState is one pepper's reusable HMAC with scratch space, so digesting a
// token on the validation hot path allocates nothing: the secret is copied
// into in rather than converted to a []byte, and the sum lands in out.
type hmacState struct {
	h   hash.Hash
	in  [128]byte
	out [sha256.Size]byte
}

// digestArray returns HMAC-SHA-256 of secret under the i-th pepper.
func (k *Keyring) digestArray(i int, secret string) [sha256.Size]byte {
	st := k.pools[i].Get().(*hmacState)
	st.h.Reset()
	if len(secret) <= len(st.in) {
		n := copy(st.in[:], secret)
		st.h.Write(st.in[:n])
		clear(st.in[:n]) // no copy of a secret lingers in the pool
	} else {
		st.h.Write([]byte(secret))
	}
	sum := st.h.Sum(st.out[:0])
	var out [sha256.Size]byte
	copy(out[:], sum)
	k.pools[i].Put(st)
	return out
}

// digest returns HMAC-SHA-256 of secret under the i-th pepper, appended to dst.
func (k *Keyring) digest(dst []byte, i int, secret string) []byte {
	d := k.digestArray(i, secret)
	return append(dst, d[:]...)
}

// Len is the number of peppers in the ring.
func (k *Keyring) Len() int { return len(k.peppers) }

// PrimaryArray returns the digest under the primary pepper without
// allocating: the validation cache's first key.
func (k *Keyring) PrimaryArray(secret string) [sha256.Size]byte { return k.digestArray(0, secret) }

// Primary returns the digest under the primary pepper: the store and cache key.
func (k *Keyring) Primary(secret string) []byte {
	return k.digest(make([]byte, 0, sha256.Size), 0, secret)
}

// All returns the digest under every pepper, primary first.
func (k *Keyring) All(secret string) [][]byte {
	out := make([][]byte, len(k.peppers))
	for i := range k.peppers {
		out[i] = k.digest(make([]byte, 0, sha256.Size), i, secret)
	}
	return out
}

// Matches reports, in constant time, whether digest is secret's digest under
// the pepper with id pepperID.
func (k *Keyring) Matches(pepperID string, digest []byte, secret string) bool {
	for i, p := range k.peppers {
		if p.ID == pepperID {
			return hmac.Equal(k.digest(make([]byte, 0, sha256.Size), i, secret), digest)
		}
	}
	return false
}

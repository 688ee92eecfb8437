// Package secretscan is GitHub's secret scanning partner program: the
// endpoint GitHub posts matches of keymint tokens to, the signature check
// against GitHub's published keys, and the processor that revokes what a
// verified report recorded. A report is recorded in the store before it is
// answered and revoked after, so a crash in between loses nothing.
package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Key list limits: GitHub publishes a handful of keys.
const (
	maxKeyListBytes = 1 << 20
	maxKeys         = 100
	fetchTimeout    = 10 * time.Second
	// retryAfterFailure is how soon a failed fetch is tried again.
	retryAfterFailure = time.Minute
)

// DefaultMinRefetch is how soon a signature by an unknown key may fetch the
// list again (GitHub publishes a new key before it signs with it).
const DefaultMinRefetch = time.Minute

// ErrBadSignature means a request is not signed by a key of the set.
var ErrBadSignature = errors.New("secretscan: signature not verified")

// ErrNoKeys means no key list has loaded yet (the source is unreachable).
var ErrNoKeys = errors.New("secretscan: no key list loaded")

// KeySetConfig configures a KeySet.
type KeySetConfig struct {
	// Source is a file path or an http(s) URL of GitHub's key list:
	// {"public_keys":[{"key_identifier","key" (PEM),"is_current"}]}.
	Source string
	// Refresh is how often Run fetches the list again; 0 means an hour.
	Refresh time.Duration
	// MinRefetch is how soon a signature by an unknown key may fetch the
	// list again; 0 means DefaultMinRefetch, negative means at once.
	MinRefetch time.Duration
	// Client fetches a URL source; nil means a client with a 10 s timeout.
	Client *http.Client
	Logger *slog.Logger
}

// KeySet is GitHub's secret-scanning public keys, cached and refreshed.
type KeySet struct {
	cfg KeySetConfig
	log *slog.Logger

	mu        sync.RWMutex
	keys      map[string]*ecdsa.PublicKey
	loaded    bool
	fetchedAt time.Time

	// fetch serializes fetches, so a burst of unknown key ids makes one.
	fetch sync.Mutex
}

// NewKeySet returns an empty set over cfg; Load fills it.
func NewKeySet(cfg KeySetConfig) *KeySet {
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	if cfg.MinRefetch == 0 {
		cfg.MinRefetch = DefaultMinRefetch
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: fetchTimeout}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeySet{cfg: cfg, log: log}
}

// keyList is GitHub's published format.
type keyList struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// Load fetches and parses the list, replacing the cached keys. On failure
// the keys loaded before stay in use.
func (k *KeySet) Load(ctx context.Context) error {
	k.fetch.Lock()
	defer k.fetch.Unlock()
	return k.loadLocked(ctx)
}

func (k *KeySet) loadLocked(ctx context.Context) error {
	raw, err := k.read(ctx)
	k.mu.Lock()
	k.fetchedAt = time.Now()
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("github keys %s: %w", k.cfg.Source, err)
	}
	keys, err := parseKeyList(raw)
	if err != nil {
		return fmt.Errorf("github keys %s: %w", k.cfg.Source, err)
	}
	k.mu.Lock()
	k.keys, k.loaded = keys, true
	k.mu.Unlock()
	return nil
}

func (k *KeySet) read(ctx context.Context) ([]byte, error) {
	src := k.cfg.Source
	if !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return readBounded(resp.Body)
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxKeyListBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyListBytes {
		return nil, fmt.Errorf("key list is larger than %d bytes", maxKeyListBytes)
	}
	return b, nil
}

// parseKeyList reads GitHub's key list: every listed key verifies
// (is_current only says which one GitHub signs with now, and an older one
// may still sign requests in flight during a rotation).
func parseKeyList(raw []byte) (map[string]*ecdsa.PublicKey, error) {
	var l keyList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("not a key list: %w", err)
	}
	if len(l.PublicKeys) == 0 || len(l.PublicKeys) > maxKeys {
		return nil, fmt.Errorf("%d keys listed, want 1 to %d", len(l.PublicKeys), maxKeys)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(l.PublicKeys))
	for _, pk := range l.PublicKeys {
		if pk.KeyIdentifier == "" {
			return nil, errors.New("a key has no key_identifier")
		}
		block, _ := pem.Decode([]byte(pk.Key))
		if block == nil {
			return nil, fmt.Errorf("key %s is not PEM", pk.KeyIdentifier)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", pk.KeyIdentifier, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %s is not an ECDSA P-256 key", pk.KeyIdentifier)
		}
		keys[pk.KeyIdentifier] = ec
	}
	return keys, nil
}

// Verify checks signature (base64 of an ASN.1 DER ECDSA signature) over
// body's SHA-256 with the key keyID names. A key id not in the cached list
// fetches the list once more (at most every MinRefetch): GitHub may have
// rotated.
func (k *KeySet) Verify(ctx context.Context, keyID, signature string, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || keyID == "" || len(sig) == 0 {
		return ErrBadSignature
	}
	pub, loaded := k.key(keyID)
	if pub == nil {
		k.refetch(ctx)
		pub, loaded = k.key(keyID)
	}
	if pub == nil {
		if !loaded {
			return ErrNoKeys
		}
		return ErrBadSignature
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return ErrBadSignature
	}
	return nil
}

func (k *KeySet) key(id string) (*ecdsa.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[id], k.loaded
}

// refetch loads the list again unless it was fetched within MinRefetch.
func (k *KeySet) refetch(ctx context.Context) {
	k.fetch.Lock()
	defer k.fetch.Unlock()
	k.mu.RLock()
	recent := k.cfg.MinRefetch > 0 && time.Since(k.fetchedAt) < k.cfg.MinRefetch
	k.mu.RUnlock()
	if recent {
		return
	}
	if err := k.loadLocked(ctx); err != nil {
		k.log.WarnContext(ctx, "github key list refetch failed", "err", err.Error())
	}
}

// Run refreshes the list every Refresh (every minute while it fails) until
// ctx ends.
func (k *KeySet) Run(ctx context.Context) {
	wait := k.cfg.Refresh
	k.mu.RLock()
	if !k.loaded {
		wait = retryAfterFailure
	}
	k.mu.RUnlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait = k.cfg.Refresh
		if err := k.Load(ctx); err != nil {
			k.log.WarnContext(ctx, "github key list refresh failed; keeping the keys loaded before", "err", err.Error())
			wait = retryAfterFailure
		}
		t.Reset(wait)
	}
}

package secretscan

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keymint/keymint/services/secretscan/secretscantest"
)

// keyServer serves a replaceable key list and counts fetches.
type keyServer struct {
	mu      sync.Mutex
	list    []byte
	fetches atomic.Int64
}

func (s *keyServer) set(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = b
}

func (s *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.list)
}

// Rotation as GitHub does it: a new key is listed (is_current) before it
// signs, the old one stays listed a while, then goes.
func TestKeySetRotationFromURL(t *testing.T) {
	t.Parallel()
	oldKey, newKey, stranger := secretscantest.NewKey(t), secretscantest.NewKey(t), secretscantest.NewKey(t)
	ks := &keyServer{}
	ks.set(secretscantest.KeyList(t, oldKey, oldKey))
	srv := httptest.NewServer(ks)
	t.Cleanup(srv.Close)
	set := NewKeySet(KeySetConfig{Source: srv.URL + "/meta/public_keys/secret_scanning", MinRefetch: -1})
	body := []byte(`[{"token":"km_x","type":"keymint_api_token","url":"https://github.com/o/r","source":"content"}]`)
	ctx := t.Context()

	// A source that never answered a list: no keys, not "bad signature".
	down := NewKeySet(KeySetConfig{Source: srv.URL + "/nothing-here", MinRefetch: -1})
	ks.set([]byte("not found"))
	if err := down.Verify(ctx, oldKey.ID, oldKey.Sign(t, body), body); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("before any list loaded: %v, want ErrNoKeys", err)
	}
	ks.set(secretscantest.KeyList(t, oldKey, oldKey))
	if err := set.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := set.Verify(ctx, oldKey.ID, oldKey.Sign(t, body), body); err != nil {
		t.Fatalf("signed by the listed key: %v", err)
	}
	// Forged: right key id, another key's signature; a signature of other
	// bytes; garbage; nothing.
	for name, c := range map[string][2]string{
		"other key":   {oldKey.ID, stranger.Sign(t, body)},
		"other body":  {oldKey.ID, oldKey.Sign(t, append([]byte(" "), body...))},
		"not base64":  {oldKey.ID, "!!"},
		"empty":       {"", ""},
		"unknown key": {stranger.ID, stranger.Sign(t, body)},
	} {
		if err := set.Verify(ctx, c[0], c[1], body); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: %v, want ErrBadSignature", name, err)
		}
	}

	// The new key appears, current; a signature by it fetches the list.
	ks.set(secretscantest.KeyList(t, newKey, oldKey, newKey))
	before := ks.fetches.Load()
	if err := set.Verify(ctx, newKey.ID, newKey.Sign(t, body), body); err != nil {
		t.Fatalf("signed by the new key: %v", err)
	}
	if ks.fetches.Load() != before+1 {
		t.Fatalf("an unknown key id made %d fetches, want 1", ks.fetches.Load()-before)
	}
	if err := set.Verify(ctx, oldKey.ID, oldKey.Sign(t, body), body); err != nil {
		t.Fatalf("the old key while still listed: %v", err)
	}
	// The old key leaves the list: after the refresh it no longer verifies.
	ks.set(secretscantest.KeyList(t, newKey, newKey))
	if err := set.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := set.Verify(ctx, oldKey.ID, oldKey.Sign(t, body), body); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("the dropped key: %v, want ErrBadSignature", err)
	}
	// A list that does not parse keeps the keys loaded before.
	ks.set([]byte(`{"public_keys":[]}`))
	if err := set.Load(ctx); err == nil {
		t.Fatal("an empty list loaded")
	}
	if err := set.Verify(ctx, newKey.ID, newKey.Sign(t, body), body); err != nil {
		t.Fatalf("after a bad refresh: %v", err)
	}
}

// Unknown key ids fetch at most once per MinRefetch: a flood of forged
// key ids is not a flood of fetches.
func TestKeySetRefetchBounded(t *testing.T) {
	t.Parallel()
	k := secretscantest.NewKey(t)
	ks := &keyServer{}
	ks.set(secretscantest.KeyList(t, k, k))
	srv := httptest.NewServer(ks)
	t.Cleanup(srv.Close)
	set := NewKeySet(KeySetConfig{Source: srv.URL}) // DefaultMinRefetch
	if err := set.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		_ = set.Verify(t.Context(), "forged-id", k.Sign(t, []byte("x")), []byte("x"))
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (the load)", n)
	}
}

func TestKeySetFromFile(t *testing.T) {
	t.Parallel()
	a, b := secretscantest.NewKey(t), secretscantest.NewKey(t)
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, secretscantest.KeyList(t, b, a, b), 0o600); err != nil {
		t.Fatal(err)
	}
	set := NewKeySet(KeySetConfig{Source: path})
	if err := set.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	body := []byte("[]")
	for _, k := range []*secretscantest.Key{a, b} {
		if err := set.Verify(t.Context(), k.ID, k.Sign(t, body), body); err != nil {
			t.Fatalf("key %s: %v", k.ID, err)
		}
	}
	for name, content := range map[string]string{
		"not json":     "nope",
		"not pem":      `{"public_keys":[{"key_identifier":"1","key":"abc","is_current":true}]}`,
		"no id":        `{"public_keys":[{"key_identifier":"","key":"abc"}]}`,
		"missing file": "",
	} {
		p := filepath.Join(t.TempDir(), "bad.json")
		if content != "" {
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := NewKeySet(KeySetConfig{Source: p}).Load(t.Context()); err == nil {
			t.Fatalf("%s: loaded", name)
		}
	}
}

func TestDecodeMatchesLimits(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]int{
		`[]`: 0,
		`[{"token":"a","type":"t","url":"u","source":"s"}]`: 0,
		`{"tokens":["a"]}`:  400,
		`[1]`:               400,
		`[{"token":"a"}] x`: 400,
		`[{"token":"a"}`:    400,
		`[{"token":"` + string(make([]byte, 0)) + `"}]`: 0,
	} {
		if _, status, _ := decodeMatches([]byte(body)); status != want {
			t.Errorf("%s: status %d, want %d", body, status, want)
		}
	}
	big := []byte("[")
	for i := range MaxMatches + 1 {
		if i > 0 {
			big = append(big, ',')
		}
		big = append(big, `{"token":"a"}`...)
	}
	big = append(big, ']')
	if _, status, _ := decodeMatches(big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d matches: status %d, want 413", MaxMatches+1, status)
	}
}

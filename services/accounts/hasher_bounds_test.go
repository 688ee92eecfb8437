package accounts

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A caller waits at most 2 s for a hash slot by default, a set MaxWait is
// kept, and a password of exactly MaxPasswordLen bytes (which CheckPassword
// takes) hashes and verifies. Shown failing on NewHasher's `wait == 0`
// negated and `2 * time.Second` → `/`, and Hash's `len(password) >
// MaxPasswordLen` → `>=`.
func TestHasherWaitAndLengthBounds(t *testing.T) {
	t.Parallel()
	if h := newTestHasher(t, HasherConfig{}); h.maxWait != 2*time.Second {
		t.Errorf("default wait for a slot %v, want 2s", h.maxWait)
	}
	if h := newTestHasher(t, HasherConfig{MaxWait: time.Minute}); h.maxWait != time.Minute {
		t.Errorf("set wait for a slot %v, want 1m", h.maxWait)
	}
	h := newTestHasher(t, HasherConfig{})
	password := strings.Repeat("p", MaxPasswordLen)
	phc, err := h.Hash(context.Background(), password)
	if err != nil {
		t.Fatalf("hashing a %d-byte password: %v", len(password), err)
	}
	if ok, err := h.Verify(context.Background(), password, phc); !ok || err != nil {
		t.Fatalf("verifying it: %v, %v", ok, err)
	}
	if _, err := h.Hash(context.Background(), password+"p"); err == nil {
		t.Fatalf("a %d-byte password hashed", len(password)+1)
	}
}

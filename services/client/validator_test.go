package client

import (
	"context"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// newOffline is a validator whose keymint is unreachable: these tests look
// at its cache bookkeeping only.
func newOffline(t *testing.T) *Validator {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	v, err := NewValidator(context.Background(), ValidatorConfig{Conn: conn, Timeout: 100 * time.Millisecond,
		executor: func(fn func()) { fn() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func validEntry(tokenID string) *entry {
	return &entry{valid: true, identity: &Identity{TokenID: tokenID}, until: time.Now().Add(time.Hour)}
}

// Storing an answer for a key that already has one must keep the token id
// mapping: otherwise a later pushed revocation finds nothing to drop and
// the old answer serves until its TTL.
func TestStoreReplacingEntryKeepsMapping(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	key := cacheKey(sha256Sum("km_some_token"))
	v.store(key, validEntry("tok-1"))
	v.store(key, validEntry("tok-1")) // a second load of the same token; its callback has run
	v.drop("tok-1", true)
	if _, ok := v.cache.GetIfPresent(key); ok {
		t.Fatal("a pushed revocation did not drop the replaced entry")
	}
}

// An id once seen revoked never becomes valid again, whatever a lagging
// replica answers afterwards.
func TestRevokedIDNeverValidAgain(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	v.drop("tok-2", true)
	e, cacheable := v.entryFrom(validResponse("tok-2"))
	if e.valid || !cacheable {
		t.Fatalf("a valid answer for a revoked id became %+v", e)
	}
	// A rotation drops the entry without marking the id.
	v.drop("tok-3", false)
	if e, _ := v.entryFrom(validResponse("tok-3")); !e.valid {
		t.Fatal("a rotated token was marked revoked")
	}
}

func validResponse(id string) *keymintv1.ValidateTokenResponse {
	return &keymintv1.ValidateTokenResponse{Valid: true, TokenId: id}
}

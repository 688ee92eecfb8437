package client

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// entryFrom keeps every field of keymint's answer, caps reuse at the
// token's expiry, and caches refusals for NegativeTTL except those that
// depend on the scopes or the address asked. Mutations it fails on:
// `resp.GetCreateTime() != nil` and `resp.GetExpireTime() != nil` negated
// (a missing time read as 1970: CreatedAt / ExpiresAt not zero), the
// CIDR's `err != nil` negated (a readable prefix dropped, an unreadable one
// kept as "anywhere" would be).
func TestEntryFromKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	before := time.Now()
	exp := before.Add(10 * time.Second).Truncate(time.Microsecond)
	created := before.Add(-time.Hour).Truncate(time.Microsecond)
	uses := int64(4)
	meta, _ := structpb.NewStruct(map[string]any{"team": "billing"})
	e, cacheable := v.entryFrom(&keymintv1.ValidateTokenResponse{
		Valid: true, TokenId: "t", UserId: "u", OrganizationId: "o", Scopes: []string{"b", "a"},
		ExternalId: "ext", Metadata: meta, RemainingUses: &uses,
		PrincipalKind: keymintv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT,
		AllowedCidrs:  []string{"10.0.0.0/8", "not a prefix"},
		CreateTime:    timestamppb.New(created), ExpireTime: timestamppb.New(exp),
	})
	if !cacheable || !e.valid || e.noStore {
		t.Fatalf("valid answer: %+v cacheable %v", e, cacheable)
	}
	id := e.identity
	if id.TokenID != "t" || id.UserID != "u" || id.OrganizationID != "o" || !slices.Equal(id.Scopes, []string{"a", "b"}) ||
		id.ExternalID != "ext" || !proto.Equal(id.Metadata, meta) || id.RemainingUses == nil || *id.RemainingUses != 4 ||
		id.PrincipalKind != keymintv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT {
		t.Errorf("identity %+v", id)
	}
	if !slices.Equal(id.AllowedCIDRs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}) {
		t.Errorf("allowed CIDRs %v, want 10.0.0.0/8 and the prefix that matches nothing", id.AllowedCIDRs)
	}
	if !id.CreatedAt.Equal(created) || !id.ExpiresAt.Equal(exp) || !e.until.Equal(exp) {
		t.Errorf("created %v expires %v until %v, want %v, %v, %v", id.CreatedAt, id.ExpiresAt, e.until, created, exp, exp)
	}

	// No times: zero, and reuse bounded by the TTL.
	e, _ = v.entryFrom(&keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t2", NoStore: true})
	if !e.identity.CreatedAt.IsZero() || !e.identity.ExpiresAt.IsZero() || !e.noStore {
		t.Errorf("no times given: created %v expires %v noStore %v", e.identity.CreatedAt, e.identity.ExpiresAt, e.noStore)
	}
	if e.until.Before(before.Add(v.cfg.TTL)) || e.until.After(time.Now().Add(v.cfg.TTL)) {
		t.Errorf("reuse until %v, want TTL (%v) from the answer", e.until, v.cfg.TTL)
	}

	for _, c := range []struct {
		reason    Reason
		noStore   bool
		cacheable bool
		ttl       time.Duration
	}{
		{keymintv1.ValidateTokenResponse_REVOKED, false, true, v.cfg.NegativeTTL},
		{keymintv1.ValidateTokenResponse_RATE_LIMITED, true, true, v.cfg.TTL},
		{keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE, false, false, v.cfg.NegativeTTL},
		{keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED, false, false, v.cfg.NegativeTTL},
	} {
		before := time.Now()
		e, cacheable := v.entryFrom(&keymintv1.ValidateTokenResponse{Reason: c.reason, NoStore: c.noStore,
			RetryAfter: durationpb.New(1500 * time.Millisecond)})
		if e.valid || e.reason != c.reason || e.noStore != c.noStore || cacheable != c.cacheable || e.retryAfter != 1500*time.Millisecond {
			t.Errorf("%v: %+v cacheable %v", c.reason, e, cacheable)
		}
		if e.until.Before(before.Add(c.ttl)) || e.until.After(time.Now().Add(c.ttl)) {
			t.Errorf("%v: reuse until %v, want %v from the answer", c.reason, e.until, c.ttl)
		}
	}
}

// ValidateToken (the sidecar's view of a Validator) answers in keymint's
// shape with every field of the identity. Mutations it fails on:
// `c != ""` and the client_ip's `err != nil` negated, `r.RetryAfter > 0`
// → `>= 0` (a zero retry_after sent) or negated.
func TestValidateTokenShape(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	created := exp.Add(-2 * time.Hour)
	uses := int64(2)
	meta, _ := structpb.NewStruct(map[string]any{"k": "v"})
	v.store(keyOf("km_full"), &entry{valid: true, until: exp, identity: &Identity{
		TokenID: "t", UserID: "u", OrganizationID: "o", Scopes: []string{"a", "b"}, ExpiresAt: exp, CreatedAt: created,
		ExternalID: "ext", Metadata: meta, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		RemainingUses: &uses, PrincipalKind: keymintv1.PrincipalKind_PRINCIPAL_KIND_USER,
	}})
	v.store(keyOf("km_plain"), &entry{valid: true, until: exp, identity: &Identity{TokenID: "p"}})
	v.store(keyOf("km_limited"), &entry{reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, until: exp,
		retryAfter: 1500 * time.Millisecond})
	v.store(keyOf("km_revoked"), &entry{reason: keymintv1.ValidateTokenResponse_REVOKED, until: exp})
	ctx := context.Background()

	got, err := v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_full", ClientIp: "10.9.9.9", RequiredScopes: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t", UserId: "u", OrganizationId: "o",
		Scopes: []string{"a", "b"}, ExternalId: "ext", Metadata: meta, RemainingUses: &uses,
		PrincipalKind: keymintv1.PrincipalKind_PRINCIPAL_KIND_USER, AllowedCidrs: []string{"10.0.0.0/8"},
		ExpireTime: timestamppb.New(exp), CreateTime: timestamppb.New(created)}
	if !proto.Equal(got, want) {
		t.Errorf("full identity:\n got %v\nwant %v", got, want)
	}
	// No client_ip and no allow-list: valid, without times it does not have.
	got, err = v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_plain"})
	if err != nil || !proto.Equal(got, &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "p"}) {
		t.Errorf("plain: %v %v", got, err)
	}
	got, err = v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_full", ClientIp: "192.0.2.1"})
	if err != nil || got.GetValid() || got.GetReason() != keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED {
		t.Errorf("outside the allow-list: %v %v", got, err)
	}
	got, err = v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_limited"})
	if err != nil || !proto.Equal(got, &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED,
		RetryAfter: durationpb.New(1500 * time.Millisecond)}) {
		t.Errorf("rate limited: %v %v", got, err)
	}
	got, err = v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_revoked"})
	if err != nil || !proto.Equal(got, &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_REVOKED}) {
		t.Errorf("revoked (no retry_after): %v %v", got, err)
	}
	if _, err := v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_plain", ClientIp: "10.0.0"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a client_ip that is no address: %v, want InvalidArgument", err)
	}
	// Unknown, keymint unreachable: no answer (fail closed).
	if _, err := v.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: "km_unknown"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unknown token with keymint unreachable: %v, want ErrUnavailable", err)
	}
}

// An entry the cache lets go (expired, evicted, invalidated) takes its
// token id's mapping with it, so byToken stays as bounded as the cache; a
// refusal (no identity) has no mapping. Mutation it fails on: OnDeletion's
// `e.Value.identity != nil` negated (every mapping kept forever; a
// refusal's deletion dereferences nil with the lock held).
func TestDeletedEntryTakesItsMapping(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	v.store(keyOf("km_a"), validEntry("tok-a"))
	v.cache.Invalidate(keyOf("km_a"))
	v.mu.Lock()
	n := len(v.byToken)
	v.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d token id mappings left after their entry was deleted", n)
	}
	// Last: with the mutation, this deletion would leave v.mu locked.
	v.store(keyOf("km_refused"), &entry{reason: keymintv1.ValidateTokenResponse_REVOKED, until: time.Now().Add(time.Hour)})
	v.cache.Invalidate(keyOf("km_refused"))
}

package tokens_test

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/tokens"
)

// A rate-limited token's valid use is recorded as its last use, as any
// token's, and once its burst is spent the refusal says when the next use
// comes: one RatePeriod/RateLimit apart, at most. Mutations (validate.go
// on f36f8cb): `err != nil || !r.Valid` → `err != nil || r.Valid` after
// takeLimits (:144) returned before the record for every allowed use of a
// limited token; `RatePeriod / RateLimit` → `*` (:175) spaced uses
// RateLimit² times too far apart.
func TestRateLimitedTokenUses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newL1(t)
	usage := tokens.NewUsageRecorder(f.store, time.Hour, quiet)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Usage: usage, Logger: quiet})
	ctx := context.Background()
	m, err := svc.Mint(authn.WithPrincipal(ctx, f.owner), tokens.MintRequest{
		Name: "limited", Scopes: []string{"read"}, Options: tokens.Options{RateLimit: 5, RatePeriod: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := svc.Validate(ctx, m.Secret, nil); err != nil || !r.Valid {
		t.Fatalf("first use of a rate-limited token: %+v, %v", r, err)
	}
	if err := usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.GetToken(ctx, m.Token.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt.IsZero() {
		t.Fatal("the valid use of a rate-limited token was not recorded as its last use")
	}

	for i := 2; i <= 5; i++ {
		if r, err := svc.Validate(ctx, m.Secret, nil); err != nil || !r.Valid {
			t.Fatalf("use %d of 5 an hour: %+v, %v", i, r, err)
		}
	}
	r, err := svc.Validate(ctx, m.Secret, nil)
	if err != nil || r.Valid || r.Reason != tokens.ReasonRateLimited {
		t.Fatalf("use 6 of 5 an hour: %+v, %v; want refused as rate limited", r, err)
	}
	if every := time.Hour / 5; r.RetryAfter <= 0 || r.RetryAfter > every {
		t.Fatalf("retry after %v, want within one use's share of the period (%v)", r.RetryAfter, every)
	}
}

package tokens_test

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/tokens"
)

// A rate-limited token without a usage limit is held to its rate: 3 per
// hour gives 3 valid answers, then RATE_LIMITED with a retry time (shown
// failing on Validate's `e.RateLimit > 0 || e.UsagePool != ""` negated,
// which skipped the limits of exactly such tokens).
func TestRateLimitedTokenHeldToItsRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Logger: quiet})
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t", Scopes: []string{"read"},
		Options: tokens.Options{RateLimit: 3, RatePeriod: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r := validate(t, svc, m.Secret); !r.Valid {
			t.Fatalf("use %d of 3: %+v", i+1, r)
		}
	}
	r := validate(t, svc, m.Secret)
	if r.Valid || r.Reason != tokens.ReasonRateLimited || r.RetryAfter <= 0 {
		t.Fatalf("the 4th use in the hour: valid %v, reason %v, retry after %v; want RATE_LIMITED with a wait", r.Valid, r.Reason, r.RetryAfter)
	}
}

// A usage-limited token without a rate limit gets exactly its uses, then
// USAGE_EXHAUSTED; at most MaxRequiredScopes required scopes are taken
// (shown failing on Validate's `e.UsagePool != ""` negated, which skipped
// the counter of exactly such tokens, and on `len(required) >
// MaxRequiredScopes` → `>=`).
func TestUsageLimitedTokenGetsItsUses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Logger: quiet})
	uses := int64(2)
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t", Scopes: []string{"read"},
		Options: tokens.Options{RemainingUses: &uses}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if r := validate(t, svc, m.Secret); !r.Valid || r.Remaining != int64(1-i) {
			t.Fatalf("use %d of 2: valid %v, %d left", i+1, r.Valid, r.Remaining)
		}
	}
	if r := validate(t, svc, m.Secret); r.Valid || r.Reason != tokens.ReasonUsageExhausted {
		t.Fatalf("the 3rd use of 2: valid %v, reason %v; want USAGE_EXHAUSTED", r.Valid, r.Reason)
	}
	plenty := make([]string, tokens.MaxRequiredScopes)
	for i := range plenty {
		plenty[i] = "read"
	}
	if _, err := svc.Validate(context.Background(), m.Secret, plenty); err != nil {
		t.Fatalf("%d required scopes refused: %v", len(plenty), err)
	}
	if _, err := svc.Validate(context.Background(), m.Secret, append(plenty, "read")); err == nil {
		t.Fatalf("%d required scopes taken", len(plenty)+1)
	}
}

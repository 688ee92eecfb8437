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

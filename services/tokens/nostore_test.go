package tokens

import (
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
)

// NoStore, the flag every caching validator obeys: set for a valid answer
// of a usage- or rate-limited token and for refusals that depend on the
// moment or the address, clear otherwise. Shown failing on NoStore's
// `r.Entry != nil` negated (a gremlins survivor: no valid limited answer
// marked), `RateLimit > 0` → `>= 0` and `UsagePool != ""` negated.
func TestResultNoStore(t *testing.T) {
	t.Parallel()
	limited := &cache.Entry{TokenID: "t", UsagePool: "t", RemainingUses: 3}
	rated := &cache.Entry{TokenID: "t", RateLimit: 5, RatePeriod: time.Minute}
	plain := &cache.Entry{TokenID: "t"}
	for _, tc := range []struct {
		name string
		r    Result
		want bool
	}{
		{"valid, usage limit", Result{Valid: true, Entry: limited}, true},
		{"valid, rate limit", Result{Valid: true, Entry: rated}, true},
		{"valid, no limit", Result{Valid: true, Entry: plain}, false},
		{"rate limited", Result{Reason: ReasonRateLimited, Entry: rated}, true},
		{"address not allowed", Result{Reason: ReasonIPNotAllowed, Entry: plain}, true},
		{"revoked, usage limit", Result{Reason: ReasonRevoked, Entry: limited}, false},
		{"usage exhausted", Result{Reason: ReasonUsageExhausted, Entry: limited}, false},
		{"unknown", Result{Reason: ReasonNotFound}, false},
	} {
		if got := tc.r.NoStore(); got != tc.want {
			t.Errorf("%s: NoStore %v, want %v", tc.name, got, tc.want)
		}
	}
}

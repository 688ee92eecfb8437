package throttle

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// keymint_signin_throttled_total{scope} (README, Metrics) counts each
// refused attempt once, under the scope whose limit refused it; admitted
// attempts count nothing. A second SignIn on one registry is an error at
// start, not a metric silently missing.
//
// Mutation: services/throttle/signin.go NewSignIn's `err != nil` after
// Register negated (a failed registration ignored, a good one refused).
func TestSignInThrottledMetric(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t)
	reg := prometheus.NewRegistry()
	cfg := SignInConfig{Limiter: l, Account: Limit{Burst: 1, Interval: time.Hour}, IP: Limit{Burst: 3, Interval: time.Hour}, Registerer: reg}
	s, err := NewSignIn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")
	// a: 1 admitted, 2 refused by the account limit (each gives its IP
	// event back); b, c: admitted, the address's 3 spent; d: refused by it.
	for _, email := range []string{"a", "a", "a", "b", "c", "d"} {
		_, err := s.Begin(ctx, email+"@example.com", ip)
		var th *Throttled
		if err != nil && !errors.As(err, &th) {
			t.Fatalf("Begin(%s): %v", email, err)
		}
	}
	// What the registry exposes, not the package's own counter.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "keymint_signin_throttled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "scope" {
					got[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if len(got) != 2 || got["account"] != 2 || got["ip"] != 1 {
		t.Errorf("keymint_signin_throttled_total by scope = %v, want account 2, ip 1", got)
	}
	if _, err := NewSignIn(cfg); err == nil {
		t.Error("a second SignIn registered on the same registry without an error")
	}
}

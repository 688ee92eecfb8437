package tokens_test

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/throttle"
	"github.com/keymint/keymint/services/tokens"
)

// Leak reports from one address are bounded: a limit given is kept, and
// none given is DefaultLeakReportLimit (10 at once). Mutation (service.go
// on f36f8cb): `s.leakLimit.Burst == 0` negated replaces a limit given with
// the default and leaves an unset one at zero.
func TestLeakReportLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reports := func(cfg tokens.Config, n int) (accepted int, refused error) {
		svc := tokens.New(cfg)
		for i := 0; i < n; i++ {
			if _, err := svc.ReportLeaked(context.Background(), nil); err != nil {
				return accepted, err
			}
			accepted++
		}
		return accepted, nil
	}
	base := tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Logger: quiet}

	given := base
	given.LeakReportLimit = throttle.Limit{Burst: 2, Interval: time.Hour}
	if n, err := reports(given, 5); n != 2 || fault.CodeOf(err) != fault.ResourceExhausted {
		t.Fatalf("limit 2 an hour: %d reports accepted, then %v; want 2, then ResourceExhausted", n, err)
	}

	// The default's burst is accepted whole; a refusal comes within
	// twice the burst (one more report is let in every 6 s: only a stall
	// of a minute between these calls could let them all through).
	burst := tokens.DefaultLeakReportLimit.Burst
	if n, err := reports(base, 2*burst); n < burst || fault.CodeOf(err) != fault.ResourceExhausted {
		t.Fatalf("default limit: %d reports accepted, then %v; want at least %d, then ResourceExhausted", n, err, burst)
	}
}

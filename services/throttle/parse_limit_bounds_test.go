package throttle

import (
	"testing"
	"time"
)

// ParseLimit takes a burst from 1 to 1000000 and an interval from 1ms to
// 24h, both ends included (its error message is the flag's documentation),
// and refuses one step beyond either end.
//
// Mutations (gremlins survivors): services/throttle/limiter.go ParseLimit's
// `burst < 1`, `burst > 1_000_000`, `interval < time.Millisecond` and
// `interval > 24*time.Hour` with the bound excluded (`<=`, `>=`).
func TestParseLimitBounds(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Limit{
		"1/1s":       {1, time.Second},
		"1000000/1s": {1_000_000, time.Second},
		"5/1ms":      {5, time.Millisecond},
		"5/24h":      {5, 24 * time.Hour},
	} {
		if l, err := ParseLimit(s); err != nil || l != want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", s, l, err, want)
		}
	}
	for _, s := range []string{"0/1s", "1000001/1s", "5/999us", "5/24h0m0.001s"} {
		if _, err := ParseLimit(s); err == nil {
			t.Errorf("ParseLimit(%q) accepted", s)
		}
	}
}

package quota

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache/redistest"
)

// A zero Config takes the documented defaults, and a set value is kept:
// counters live under keymint:uses: and an idle one stays 30 days (README,
// "Consistency of usage limits"), each Redis call is bounded by 50 ms and a
// failure skips Redis for 1 s.
//
// Mutations (gremlins survivors): services/quota/quota.go New's
// `c.prefix == ""`, `c.timeout <= 0` and `c.backoff <= 0` negated or
// `<= 0` → `< 0`: a set value replaced by the default, or a zero kept.
func TestConfigDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 10)
	client := newRedis(t, rs.URL())
	zero, err := New(Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if zero.prefix != DefaultPrefix || zero.timeout != DefaultTimeout || zero.backoff != DefaultBackoff || zero.keyTTL != DefaultKeyTTL {
		t.Fatalf("zero Config: prefix %q, timeout %v, backoff %v, key TTL %v; want %q, %v, %v, %v",
			zero.prefix, zero.timeout, zero.backoff, zero.keyTTL, DefaultPrefix, DefaultTimeout, DefaultBackoff, DefaultKeyTTL)
	}
	// The counter in Redis: zero prefix and key TTL, but a generous timeout
	// (the 50 ms default can time out on a loaded machine, and the use is
	// then taken from the store, with no counter in Redis).
	c, err := New(Config{Store: s, Client: client, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if DefaultKeyTTL != 30*24*time.Hour || DefaultTimeout != 50*time.Millisecond || DefaultBackoff != time.Second {
		t.Fatalf("defaults %v, %v, %v differ from the documented 30 days, 50 ms, 1 s", DefaultKeyTTL, DefaultTimeout, DefaultBackoff)
	}
	ctx := context.Background()
	if ok, _, err := c.Take(ctx, pool, 10); !ok || err != nil {
		t.Fatalf("Take = %v, %v", ok, err)
	}
	// The counter is in Redis under the default prefix, with the idle TTL
	// (a day's slack: the TTL counts down from the Take).
	key := DefaultPrefix + "{" + pool + "}"
	ttl, err := client.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < DefaultKeyTTL-24*time.Hour || ttl > DefaultKeyTTL {
		t.Fatalf("counter %s has TTL %v, want about %v", key, ttl, DefaultKeyTTL)
	}

	set, err := New(Config{Store: s, Client: client, Prefix: "p:", Timeout: 7 * time.Second,
		Backoff: 3 * time.Minute, KeyTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if set.prefix != "p:" || set.timeout != 7*time.Second || set.backoff != 3*time.Minute || set.keyTTL != time.Hour {
		t.Fatalf("set Config changed: prefix %q, timeout %v, backoff %v, key TTL %v",
			set.prefix, set.timeout, set.backoff, set.keyTTL)
	}
}

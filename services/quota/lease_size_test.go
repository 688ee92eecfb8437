package quota

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache/redistest"
)

// A lease is an eighth of what the store had left (README: "an eighth of
// what is left, 1 to 1000"): the first from the caller's hint, every later
// one from the store's count Redis recorded at the last refill, whatever
// hint a caller passes then, so a stale or wrong hint cannot lease the
// whole count at once (and lose it all with Redis).
//
// Mutation (a gremlins survivor): services/quota/quota.go takeRedis's
// `if n < 0 { n = hint }` negated (`n >= 0`): the second lease sized from
// the hint, 8000, takes all 700 uses the store has.
func TestLeaseSizedFromStoresCount(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 800)
	// A generous timeout: a Redis call timing out on a loaded machine
	// would take from the store one by one and change the counts.
	c, err := New(Config{Store: s, Client: newRedis(t, rs.URL()), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	left := func() int64 {
		t.Helper()
		tok, err := s.GetToken(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		return tok.RemainingUses
	}
	// First use: no count recorded, the hint (800) sizes the lease: 100.
	if ok, _, err := c.Take(ctx, pool, 800); !ok || err != nil {
		t.Fatalf("first Take = %v, %v", ok, err)
	}
	if got := left(); got != 700 {
		t.Fatalf("store after the first lease: %d, want 700 (a lease of 800/8)", got)
	}
	// The rest of that lease, then the next refill, all with a wrong hint.
	for i := range 100 {
		if ok, _, err := c.Take(ctx, pool, 8000); !ok || err != nil {
			t.Fatalf("Take %d = %v, %v", i+2, ok, err)
		}
	}
	if got := left(); got != 700-700/8 {
		t.Fatalf("store after the second lease: %d, want %d (a lease of 700/8, not sized by the hint)", got, 700-700/8)
	}
}

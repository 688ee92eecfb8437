package quota

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache/redistest"
)

// takeHook is the real store, with a hook run after a lease (a take of
// more than one use) committed.
type takeHook struct {
	Store
	once  sync.Once
	after func()
}

func (h *takeHook) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	taken, left, err := h.Store.TakeTokenUses(ctx, id, n)
	if n > 1 {
		h.once.Do(h.after)
	}
	return taken, left, err
}

// Redis dying between the store's lease and its recording in Redis: the
// caller keeps one use of the lease, the rest are lost, and nothing is
// granted twice (package comment: "never grants extra"): of 80 uses, the
// first lease of 10 costs 9, and with Redis down the store's 70 are
// granted one by one, 71 in all. The warning names the 9 lost (shown
// failing on refill's log count `taken-1` → `taken+1` and → `-(taken-1)`).
func TestRedisFailsMidLease(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 80)
	st := &takeHook{Store: s, after: rs.Stop}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	c, err := New(Config{Store: st, Client: newRedis(t, rs.URL()), Timeout: 30 * time.Second, Backoff: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok, left, err := c.Take(ctx, pool, 80)
	if !ok || err != nil || left != 70 {
		t.Fatalf("the Take whose lease Redis never recorded = %v, %d left, %v; want granted, 70 (the store's)", ok, left, err)
	}
	if got := hammer(t, []*Counter{c}, pool, 80, 5, 20); got != 70 {
		t.Fatalf("with Redis down after the lease: granted %d, want the store's 70", got)
	}
	if !strings.Contains(logged.String(), `"lost":9}`) {
		t.Fatalf("log = %s; want the lease's warning with \"lost\":9", logged.String())
	}
}

// Redis dying between the store's answer and its recording when the store
// had nothing left: the lease took no use, so the caller gets none (shown
// failing on quota.go refill's `taken > 0` → `taken >= 0`, which granted
// this caller a use the store never gave).
func TestRedisFailsMidLeaseOfSpentToken(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 1)
	ctx := context.Background()
	if taken, _, err := s.TakeTokenUses(ctx, pool, 1); taken != 1 || err != nil {
		t.Fatalf("spending the pool's one use in the store = %d, %v", taken, err)
	}
	st := &takeHook{Store: s, after: rs.Stop}
	c, err := New(Config{Store: st, Client: newRedis(t, rs.URL()), Timeout: 30 * time.Second, Backoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ok, left, err := c.Take(ctx, pool, 80)
	if ok || err != nil || left != 0 {
		t.Fatalf("the Take of a spent token whose lease Redis never recorded = %v, %d left, %v; want refused, 0, nil", ok, left, err)
	}
	var fired bool
	st.once.Do(func() { fired = true })
	if fired {
		t.Fatal("the store was never asked for a lease: the test did not reach the refill")
	}
	if got := hammer(t, []*Counter{c}, pool, 80, 2, 5); got != 0 {
		t.Fatalf("with Redis down after the lease: granted %d, want 0", got)
	}
}

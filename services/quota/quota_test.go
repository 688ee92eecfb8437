package quota

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
)

// newPool makes a SQLite store holding one token with uses uses and returns
// the store and the token's id.
func newPool(t *testing.T, uses int64) (*sqlite.Store, string) {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, t.TempDir()+"/q.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	org, err := s.EnsureOrg(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{ID: uuid.NewString(), OrgID: org.ID, Email: "a@example.com", PasswordHash: "h"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	err = s.CreateToken(ctx, store.Token{ID: id, OrgID: org.ID, UserID: u.ID, Name: "t", Hint: "km_x",
		Digest: []byte(id), PepperID: "1", CreatedBy: u.ID, UsagePool: id, RemainingUses: uses})
	if err != nil {
		t.Fatal(err)
	}
	return s, id
}

func newRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// hammer takes uses of pool through counters from workers goroutines,
// calls times each, and returns how many were granted.
func hammer(t *testing.T, counters []*Counter, pool string, hint int64, workers, calls int) int64 {
	t.Helper()
	var granted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			c := counters[w%len(counters)]
			for range calls {
				ok, _, err := c.Take(context.Background(), pool, hint)
				if err != nil {
					t.Errorf("Take: %v", err)
					return
				}
				if ok {
					granted.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	return granted.Load()
}

// In the store alone, concurrent takers get exactly the uses there are.
func TestStoreOnlyExact(t *testing.T) {
	t.Parallel()
	s, pool := newPool(t, 10)
	c, _ := New(Config{Store: s})
	if got := hammer(t, []*Counter{c}, pool, 10, 50, 2); got != 10 {
		t.Fatalf("granted %d uses of 10", got)
	}
}

// Two counters (two replicas) sharing Redis and the store grant exactly the
// uses there are, under 50 concurrent callers, for small and larger counts.
func TestRedisExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	for _, uses := range []int64{1, 10, 1000} {
		s, pool := newPool(t, uses)
		prefix := redistest.Prefix()
		var counters []*Counter
		for range 2 {
			c, _ := New(Config{Store: s, Client: newRedis(t, url), Prefix: prefix, Timeout: time.Second})
			counters = append(counters, c)
		}
		calls := int(uses/50) + 3
		if got := hammer(t, counters, pool, uses, 50, calls); got != uses {
			t.Fatalf("%d uses: granted %d", uses, got)
		}
		// Spent: the next call is refused from Redis alone.
		ok, _, err := counters[0].Take(context.Background(), pool, 0)
		if ok || err != nil {
			t.Fatalf("Take after all uses = %v, %v", ok, err)
		}
	}
}

// Redis losing its data never grants a use twice and loses exactly the
// unused part of the lease it held: before the flush the store's count and
// Redis's lease add up to the uses not yet granted; after it, exactly the
// store's count is still granted.
//
// Mutation: services/quota/quota.go refillScript leases every use it took
// while the refiller also keeps one (`taken - 1` → `taken`): the sum breaks.
func TestRedisLossNeverOvergrants(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 100)
	client := newRedis(t, rs.URL())
	c, err := New(Config{Store: s, Client: client, Timeout: 10 * time.Second, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := hammer(t, []*Counter{c}, pool, 100, 5, 6) // 30 uses
	if first != 30 {
		t.Fatalf("granted %d of the first 30", first)
	}
	leased := c.Leased(ctx, []string{pool})[pool]
	tok, err := s.GetToken(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RemainingUses+leased != 100-first {
		t.Fatalf("store %d + Redis lease %d after %d of 100 uses, want %d", tok.RemainingUses, leased, first, 100-first)
	}
	if leased == 0 {
		t.Fatal("no lease outstanding at the flush: the test would not lose anything")
	}
	if err := client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rest := hammer(t, []*Counter{c}, pool, 100, 5, 40)
	if rest != tok.RemainingUses {
		t.Fatalf("after a Redis flush granted %d, want the store's %d (the %d leased are lost)", rest, tok.RemainingUses, leased)
	}
}

// Redis down: uses come from the store one by one, exactly.
func TestRedisDownUsesStore(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	s, pool := newPool(t, 20)
	client := newRedis(t, rs.URL())
	c, _ := New(Config{Store: s, Client: client, Timeout: 10 * time.Second})
	if got := hammer(t, []*Counter{c}, pool, 20, 2, 3); got != 6 {
		t.Fatalf("granted %d of 6", got)
	}
	// The lease is read from Redis itself, without the counter's timeout
	// and backoff: on a loaded machine a call of the hammer may have timed
	// out, and then Leased skips Redis and reports none.
	leased, err := client.HGet(context.Background(), c.keys(pool)[0], "n").Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	leased = max(leased, 0) // a spent counter is marked below zero
	rs.Stop()
	got := hammer(t, []*Counter{c}, pool, 20, 10, 3)
	// The uses leased to Redis are out of reach while it is down.
	if want := 14 - leased; got != want {
		t.Fatalf("with Redis down granted %d, want %d (%d leased)", got, want, leased)
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	for left, want := range map[int64]int64{-1: 1, 0: 1, 7: 1, 16: 2, 800: 100, 1 << 40: maxLease} {
		if got := lease(left); got != want {
			t.Errorf("lease(%d) = %d, want %d", left, got, want)
		}
	}
}

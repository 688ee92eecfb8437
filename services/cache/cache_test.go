package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func key(b byte) Key {
	var k Key
	k[0] = b
	return k
}

func newCache(t *testing.T, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// countingLoader returns e and counts its calls.
func countingLoader(n *atomic.Int64, e *Entry) Loader {
	return func(ctx context.Context) (*Entry, error) {
		n.Add(1)
		return e, nil
	}
}

func TestGetLoadsOnceThenHitsL1(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	k := key(1)
	var loads atomic.Int64
	want := &Entry{Key: k, TokenID: "t1", Scopes: []string{"a"}}
	for range 3 {
		e, err := c.Get(context.Background(), []Key{k}, countingLoader(&loads, want))
		if err != nil || e != want {
			t.Fatalf("Get = %v, %v", e, err)
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("loaded %d times, want 1", loads.Load())
	}
	if c.Peek(k) != want {
		t.Fatal("Peek missed a cached entry")
	}
}

func TestNegativeEntriesAreCachedAndErrorsAreNot(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	neg := key(2)
	var loads atomic.Int64
	for range 2 {
		e, err := c.Get(context.Background(), []Key{neg}, countingLoader(&loads, &Entry{Key: neg, Negative: true}))
		if err != nil || !e.Negative {
			t.Fatalf("Get = %v, %v", e, err)
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("negative entry loaded %d times, want 1", loads.Load())
	}

	bad := key(3)
	boom := errors.New("store down")
	fails := 0
	for range 2 {
		_, err := c.Get(context.Background(), []Key{bad}, func(ctx context.Context) (*Entry, error) {
			fails++
			return nil, boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the store's", err)
		}
	}
	if fails != 2 || c.Peek(bad) != nil {
		t.Fatalf("an error was cached (loads %d)", fails)
	}
}

// A token stored under an older pepper's digest is found by any of its keys.
func TestGetFindsEntryUnderLaterKey(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	primary, old := key(4), key(5)
	stored := &Entry{Key: old, TokenID: "t"}
	var loads atomic.Int64
	if _, err := c.Get(context.Background(), []Key{primary, old}, countingLoader(&loads, stored)); err != nil {
		t.Fatal(err)
	}
	if c.Peek(old) != stored || c.Peek(primary) != nil {
		t.Fatal("entry not cached under the stored digest alone")
	}
	e, err := c.Get(context.Background(), []Key{primary, old}, countingLoader(&loads, stored))
	if err != nil || e != stored || loads.Load() != 1 {
		t.Fatalf("second Get = %v, %v after %d loads", e, err, loads.Load())
	}
}

// 1,000 concurrent misses of one token make one load. The loader blocks
// until every caller is parked (synctest.Wait: each is either waiting for
// the shared load or inside a load of its own), so a cache without
// coalescing makes 1,000 loads every run, not just when the scheduler
// happens to overlap them.
//
// Mutation: services/cache/cache.go Get calls fill directly,
// `ch := c.flights.DoChan(...)` → a channel fed by `c.fill(ctx, keys, load)`.
func TestConcurrentMissesShareOneLoad(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Config{})
		k := key(6)
		var loads atomic.Int64
		release := make(chan struct{})
		load := func(ctx context.Context) (*Entry, error) {
			loads.Add(1)
			<-release
			return &Entry{Key: k, TokenID: "t"}, nil
		}
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for range 1000 {
			wg.Go(func() {
				if e, err := c.Get(context.Background(), []Key{k}, load); err != nil || e.TokenID != "t" {
					errs <- errors.Join(err, errors.New("wrong entry"))
				}
			})
		}
		synctest.Wait() // every caller is waiting
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := loads.Load(); n != 1 {
			t.Fatalf("%d loads, want 1", n)
		}
	})
}

// A revocation makes a caller arriving after it start a load of its own:
// it never shares (and so never gets the answer of) a load that began
// before (DESIGN: "a caller arriving after a revocation never shares an
// earlier lookup").
//
// Mutation: services/cache/cache.go drop keeps the flight,
// `c.flights.Forget(string(key[:]))` removed.
func TestCallerAfterInvalidationDoesNotShareEarlierLoad(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Config{})
		k := key(11)
		read, release := make(chan struct{}), make(chan struct{})
		stale := &Entry{Key: k, TokenID: "t"}
		early := make(chan *Entry, 1)
		go func() {
			e, err := c.Get(context.Background(), []Key{k}, func(ctx context.Context) (*Entry, error) {
				close(read) // read "valid" from the store before the revocation
				<-release
				return stale, nil
			})
			if err != nil {
				t.Error(err)
			}
			early <- e
		}()
		<-read
		if err := c.Invalidate(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		revoked := &Entry{Key: k, TokenID: "t", RevokedAt: time.Now()}
		late := make(chan *Entry, 1)
		go func() {
			e, err := c.Get(context.Background(), []Key{k}, func(ctx context.Context) (*Entry, error) { return revoked, nil })
			if err != nil {
				t.Error(err)
			}
			late <- e
		}()
		synctest.Wait() // the late caller has finished, or is stuck behind the early load
		select {
		case e := <-late:
			if e != revoked {
				t.Fatalf("the caller after the revocation got %+v", e)
			}
		default:
			t.Fatal("the caller after the revocation joined the load that began before it")
		}
		close(release)
		if e := <-early; e != stale {
			t.Fatalf("early caller got %+v", e)
		}
		if c.Peek(k) != revoked {
			t.Fatal("the early load's stale answer replaced the fresh one")
		}
	})
}

// An invalidation landing while storeL1 writes (after its first generation
// check, before the entry is in L1) must not leave the entry behind: the
// generation is checked again after the write. The clock, which L1 calls
// while it writes, is where this test lands the invalidation's bump.
//
// Mutation: services/cache/cache.go storeL1 drops the second check,
// `if c.gen.Load() != gen { c.l1.Invalidate(e.Key) }` removed.
func TestInvalidationDuringL1WriteLeavesNoEntry(t *testing.T) {
	t.Parallel()
	var c *Cache
	var bump atomic.Bool
	c = newCache(t, Config{Now: func() time.Time {
		if bump.CompareAndSwap(true, false) {
			c.gen.Add(1) // an invalidation of this key, racing the write
		}
		return time.Now()
	}})
	k := key(12)
	bump.Store(true)
	e, err := c.Get(context.Background(), []Key{k}, func(ctx context.Context) (*Entry, error) { return &Entry{Key: k, TokenID: "t"}, nil })
	if err != nil || e == nil {
		t.Fatalf("Get = %v, %v", e, err)
	}
	if bump.Load() {
		t.Fatal("the L1 write never read the clock: the test no longer lands the race")
	}
	if c.Peek(k) != nil {
		t.Fatal("an entry written across an invalidation stayed in L1")
	}
}

// The caller whose Get started the load gives up; those sharing it do not fail.
func TestCanceledCallerDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	k := key(7)
	started, release := make(chan struct{}), make(chan struct{})
	var loads atomic.Int64
	load := func(ctx context.Context) (*Entry, error) {
		loads.Add(1)
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &Entry{Key: k, TokenID: "t"}, nil
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := c.Get(ctxA, []Key{k}, load)
		errA <- err
	}()
	<-started
	resB := make(chan error, 1)
	go func() {
		e, err := c.Get(context.Background(), []Key{k}, load)
		if err == nil && e.TokenID != "t" {
			err = errors.New("wrong entry")
		}
		resB <- err
	}()
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller got %v", err)
	}
	close(release)
	if err := <-resB; err != nil {
		t.Fatalf("other caller failed: %v", err)
	}
	if loads.Load() != 1 || c.Peek(k) == nil {
		t.Fatalf("loads %d, cached %v", loads.Load(), c.Peek(k) != nil)
	}
}

// A load that read the store before an invalidation must not cache its
// answer after it.
func TestInvalidationDuringLoadLeavesNoEntry(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"invalidate", "drop", "flush"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, Config{})
			k := key(8)
			read, release := make(chan struct{}), make(chan struct{})
			load := func(ctx context.Context) (*Entry, error) {
				e := &Entry{Key: k, TokenID: "t"} // read before the revocation
				close(read)
				<-release
				return e, nil
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Get(context.Background(), []Key{k}, load)
				done <- err
			}()
			<-read
			switch how {
			case "invalidate":
				if err := c.Invalidate(context.Background(), k); err != nil {
					t.Fatal(err)
				}
			case "drop":
				c.Drop(k)
			case "flush":
				c.Flush()
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if c.Peek(k) != nil {
				t.Fatal("a load that began before the invalidation cached its answer")
			}
			var loads atomic.Int64
			revoked := &Entry{Key: k, TokenID: "t", RevokedAt: time.Now()}
			if e, err := c.Get(context.Background(), []Key{k}, countingLoader(&loads, revoked)); err != nil || e != revoked || loads.Load() != 1 {
				t.Fatalf("the next lookup did not load afresh: %v", err)
			}
		})
	}
}

func TestL1Off(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{L1Size: -1})
	k := key(9)
	var loads atomic.Int64
	for range 3 {
		if _, err := c.Get(context.Background(), []Key{k}, countingLoader(&loads, &Entry{Key: k})); err != nil {
			t.Fatal(err)
		}
	}
	if loads.Load() != 3 || c.Peek(k) != nil {
		t.Fatalf("with L1 off: %d loads, Peek %v", loads.Load(), c.Peek(k))
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base, neg := 5*time.Second, time.Second
	for _, tc := range []struct {
		name string
		e    Entry
		want time.Duration
	}{
		{"no expiry", Entry{}, base},
		{"expires later", Entry{ExpiresAt: now.Add(time.Hour)}, base},
		{"expires sooner than base", Entry{ExpiresAt: now.Add(2 * time.Second)}, 2 * time.Second},
		{"expired keeps its answer", Entry{ExpiresAt: now.Add(-time.Second)}, base},
		// Expired at the instant (not before): its final answer, for base
		// (shown failing on ttl's `left > 0` → `left >= 0`, a TTL of 0).
		{"expiring now keeps its answer", Entry{ExpiresAt: now}, base},
		{"revoked keeps its answer", Entry{ExpiresAt: now.Add(time.Second), RevokedAt: now}, base},
		{"negative", Entry{Negative: true}, neg},
	} {
		if got := tc.e.ttl(now, base, neg); got != tc.want {
			t.Errorf("%s: ttl %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := newCache(t, Config{Registerer: reg})
	k := key(10)
	var loads atomic.Int64
	for range 2 {
		if e, err := c.Get(context.Background(), []Key{k}, countingLoader(&loads, &Entry{Key: k})); err != nil || e == nil {
			t.Fatalf("no entry: %v", err)
		}
	}
	if err := c.Invalidate(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]prometheus.Counter{"l1 hit": c.m.l1Hit, "l1 miss": c.m.l1Miss, "store hit": c.m.storeHit, "sent": c.m.sent} {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
}

// Never a positive after a revocation: once Revoke has recorded a token,
// a load that says otherwise comes back revoked (or, for a rotation,
// expiring at the new instant) and is not cached. Shown failing on
// correct's `c.revoked.EstimatedSize() == 0` negated and `e.TokenID == ""`
// negated (each returned the stale positive, and cached it).
func TestRevokeCorrectsLaterLoads(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := at.Add(time.Hour)
	c.Revoke(key(1), "revoked", at, time.Time{})
	c.Revoke(key(2), "rotated", at, notAfter)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		loaded      Entry
		wantRevoked time.Time
		wantExpires time.Time
		cached      bool
	}{
		{"revoked, loaded live", Entry{Key: key(1), TokenID: "revoked"}, at, time.Time{}, false},
		{"rotated, loaded without expiry", Entry{Key: key(2), TokenID: "rotated"}, time.Time{}, notAfter, false},
		{"rotated, loaded expiring later", Entry{Key: key(2), TokenID: "rotated", ExpiresAt: notAfter.Add(time.Hour)}, time.Time{}, notAfter, false},
		{"rotated, loaded expiring sooner", Entry{Key: key(2), TokenID: "rotated", ExpiresAt: at.Add(time.Minute)}, time.Time{}, at.Add(time.Minute), true},
		{"another token", Entry{Key: key(3), TokenID: "other"}, time.Time{}, time.Time{}, true},
	} {
		loaded := tc.loaded
		e, err := c.Get(ctx, []Key{loaded.Key}, func(context.Context) (*Entry, error) { return &loaded, nil })
		if err != nil {
			t.Fatalf("%s: Get: %v", tc.name, err)
		}
		if !e.RevokedAt.Equal(tc.wantRevoked) || !e.ExpiresAt.Equal(tc.wantExpires) {
			t.Errorf("%s: answered revoked %v, expires %v; want %v, %v", tc.name, e.RevokedAt, e.ExpiresAt, tc.wantRevoked, tc.wantExpires)
		}
		if got := c.Peek(loaded.Key) != nil; got != tc.cached {
			t.Errorf("%s: cached = %v, want %v", tc.name, got, tc.cached)
		}
		if err := c.Invalidate(ctx, loaded.Key); err != nil {
			t.Fatal(err)
		}
	}
}

// The remembered revocations are bounded, and kept at least as long as a
// stale copy can come back (shown failing on New's `revokedSize <= 0`
// negated and `< 0`, and on revokedTTL's `set <= 0` negated, `< 0`, and
// `remoteTTL + loadTimeout` → `-`).
func TestRevokedLimits(t *testing.T) {
	t.Parallel()
	if got := newCache(t, Config{}).revoked.GetMaximum(); got != DefaultRevokedSize {
		t.Errorf("default revoked bound %d, want %d", got, DefaultRevokedSize)
	}
	if got := newCache(t, Config{RevokedSize: 7}).revoked.GetMaximum(); got != 7 {
		t.Errorf("revoked bound set to 7 is %d", got)
	}
	if got := revokedTTL(0, 5*time.Minute, 5*time.Second); got != 5*time.Minute+5*time.Second {
		t.Errorf("default revoked TTL %v, want RemoteTTL + LoadTimeout (5m5s)", got)
	}
	if got := revokedTTL(time.Hour, 5*time.Minute, 5*time.Second); got != time.Hour {
		t.Errorf("revoked TTL set to 1h is %v", got)
	}
}

// Invalidate, Revoke and Flush take the entry out of L1: the next Get
// loads again (shown failing on drop's and Flush's `c.l1 != nil` negated,
// which left L1 as it was).
func TestInvalidateRevokeFlushEmptyL1(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	ctx := context.Background()
	var loads atomic.Int64
	get := func(k Key) {
		t.Helper()
		if _, err := c.Get(ctx, []Key{k}, countingLoader(&loads, &Entry{Key: k, TokenID: string(rune('a' + k[0]))})); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		drop func(k Key)
	}{
		{"Invalidate", func(k Key) {
			if err := c.Invalidate(ctx, k); err != nil {
				t.Fatal(err)
			}
		}},
		{"Revoke", func(k Key) { c.Revoke(k, "someone else", time.Now(), time.Time{}) }},
		{"Drop", c.Drop},
		{"Flush", func(Key) { c.Flush() }},
	} {
		k := key(10)
		get(k)
		if c.Peek(k) == nil {
			t.Fatalf("%s: the loaded entry is not in L1", tc.name)
		}
		tc.drop(k)
		if c.Peek(k) != nil {
			t.Errorf("%s: the entry is still in L1", tc.name)
		}
		before := loads.Load()
		get(k)
		if loads.Load() != before+1 {
			t.Errorf("%s: the next Get did not load", tc.name)
		}
		if err := c.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}

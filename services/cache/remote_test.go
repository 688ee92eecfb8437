package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/cache/redistest"
)

// redisCache is a Cache (no Logger) with L2 on the Redis at url, under
// prefix; closed with the test.
func redisCache(t *testing.T, url, prefix string) *cache.Cache {
	t.Helper()
	client, err := rediscache.NewClient(url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	remote, err := rediscache.New(rediscache.Config{Client: client, Prefix: prefix, Timeout: 10 * time.Second, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// A Cache made without a Logger, whose L2 fill fails (the real Redis
// killed while the store is read): the store's answer is returned, and the
// failure's debug line goes nowhere instead of to a nil logger (shown
// failing, the test binary panicking, on New's `c.log == nil` negated).
func TestFillFailureWithoutLogger(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := redisCache(t, srv.URL(), redistest.Prefix())
	want := &cache.Entry{Key: cache.Key{7}, TokenID: "t7", Scopes: []string{"a"}}
	loads := 0
	e, err := c.Get(context.Background(), []cache.Key{want.Key}, func(context.Context) (*cache.Entry, error) {
		loads++
		srv.Stop() // after L2's miss, before its fill
		return want, nil
	})
	if err != nil || e != want || loads != 1 {
		t.Fatalf("Get = %v, %v after %d loads; want the store's entry after 1", e, err, loads)
	}
}

// A load's answer is filled into L2, where another replica's cache finds
// it without loading (shown failing on fill's `c.gen.Load() == gen`
// negated, which filled only loads an invalidation had overtaken).
func TestLoadFillsL2(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	a, b := redisCache(t, url, prefix), redisCache(t, url, prefix)
	want := &cache.Entry{Key: cache.Key{8}, TokenID: "t8", Scopes: []string{"a"}}
	ctx := context.Background()
	if _, err := a.Get(ctx, []cache.Key{want.Key}, func(context.Context) (*cache.Entry, error) { return want, nil }); err != nil {
		t.Fatal(err)
	}
	e, err := b.Get(ctx, []cache.Key{want.Key}, func(context.Context) (*cache.Entry, error) {
		return nil, errors.New("loaded: the first replica's answer is not in L2")
	})
	if err != nil || e.TokenID != want.TokenID {
		t.Fatalf("second replica's Get = %v, %v; want %s from L2", e, err, want.TokenID)
	}
}

// A caller that leaves during its own L2 read starts no store load: the
// next caller of the same token loads it itself rather than joining a
// load nobody waits for (shown failing when Get joined the flight before
// reading L2: the second caller then waited on the first's blocked load).
func TestCallerLeavingDuringL2ReadStartsNoLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := redisCache(t, srv.URL(), redistest.Prefix())
	key := []cache.Key{{9}}
	blocked := make(chan struct{})
	t.Cleanup(func() { close(blocked) })
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(gone, key, func(context.Context) (*cache.Entry, error) {
		<-blocked // a load nobody would ever be answered by
		return nil, errors.New("unreachable")
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with an ended context: %v, want context.Canceled", err)
	}
	want := &cache.Entry{Key: key[0], TokenID: "t9"}
	// Bounded only so that the old behaviour fails instead of hanging.
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	e, err := c.Get(ctx, key, func(context.Context) (*cache.Entry, error) { return want, nil })
	if err != nil || e != want {
		t.Fatalf("the next caller: %v, %v; want its own load's entry", e, err)
	}
}

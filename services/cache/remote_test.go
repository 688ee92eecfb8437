package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/cache/redistest"
)

// A Cache made without a Logger, whose L2 fill fails (the real Redis
// killed while the store is read): the store's answer is returned, and the
// failure's debug line goes nowhere instead of to a nil logger (shown
// failing, the test binary panicking, on New's `c.log == nil` negated).
func TestFillFailureWithoutLogger(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client, err := rediscache.NewClient(srv.URL(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	remote, err := rediscache.New(rediscache.Config{Client: client, Prefix: redistest.Prefix(), Timeout: 10 * time.Second, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
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

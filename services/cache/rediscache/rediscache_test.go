package rediscache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/redistest"
)

func key(b byte) cache.Key {
	var k cache.Key
	k[0], k[31] = b, 0xAA
	return k
}

func newRemote(t *testing.T, url, prefix string) *Remote {
	t.Helper()
	client, err := NewClient(url, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r, err := New(Config{Client: client, Prefix: prefix, Timeout: 200 * time.Millisecond, Backoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFillGetInvalidate(t *testing.T) {
	t.Parallel()
	r := newRemote(t, redistest.URL(t), redistest.Prefix())
	ctx := context.Background()
	k, other := key(1), key(2)
	if e, err := r.Get(ctx, []cache.Key{k}); e != nil || err != nil {
		t.Fatalf("empty Get = %v, %v", e, err)
	}
	live := &cache.Entry{Key: k, TokenID: "t", Scopes: []string{"a"}}
	if err := r.Fill(ctx, live, time.Minute); err != nil {
		t.Fatal(err)
	}
	e, err := r.Get(ctx, []cache.Key{other, k})
	if err != nil || e == nil || e.TokenID != "t" {
		t.Fatalf("Get = %+v, %v", e, err)
	}
	if err := r.Invalidate(ctx, k); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx, []cache.Key{k}); e != nil || err != nil {
		t.Fatalf("entry survived its invalidation: %v, %v", e, err)
	}
	// A load that read the store before the invalidation fills late: refused.
	if err := r.Fill(ctx, live, time.Minute); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx, []cache.Key{k}); e != nil || err != nil {
		t.Fatalf("a live fill after an invalidation was stored: %v, %v", e, err)
	}
	// The revoked answer itself may be cached.
	revoked := &cache.Entry{Key: k, TokenID: "t", RevokedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := r.Fill(ctx, revoked, time.Minute); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx, []cache.Key{k}); err != nil || e == nil || e.RevokedAt.IsZero() {
		t.Fatalf("revoked entry not stored: %+v, %v", e, err)
	}
}

// An entry stored under one key never answers for another.
func TestGetRefusesEntryUnderWrongKey(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	r := newRemote(t, url, prefix)
	ctx := context.Background()
	k, other := key(3), key(4)
	v, err := (&cache.Entry{Key: other, TokenID: "someone else"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.Set(ctx, r.entryKey(k), v, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx, []cache.Key{k}); e != nil || err != nil {
		t.Fatalf("answered with another key's entry: %v, %v", e, err)
	}
	if err := r.client.Set(ctx, r.entryKey(k), "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx, []cache.Key{k}); e != nil || err != nil {
		t.Fatalf("garbage value: %v, %v", e, err)
	}
}

// local records what Run applies.
type local struct {
	mu      sync.Mutex
	dropped []cache.Key
	flushes atomic.Int64
}

func (l *local) Drop(k cache.Key) {
	l.mu.Lock()
	l.dropped = append(l.dropped, k)
	l.mu.Unlock()
}

func (l *local) Flush() { l.flushes.Add(1) }

func (l *local) has(k cache.Key) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.dropped {
		if d == k {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInvalidationReachesOtherReplicas(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	a, b := newRemote(t, url, prefix), newRemote(t, url, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lb local
	go b.Run(ctx, &lb)
	eventually(t, "subscription flushes L1", 5*time.Second, func() bool { return lb.flushes.Load() >= 1 })
	if err := a.Invalidate(ctx, key(5)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica b drops the key", time.Second, func() bool { return lb.has(key(5)) })
	// Another prefix is another keymint: it hears nothing.
	c := newRemote(t, url, redistest.Prefix())
	var lc local
	go c.Run(ctx, &lc)
	eventually(t, "c subscribed", 5*time.Second, func() bool { return lc.flushes.Load() >= 1 })
	if err := a.Invalidate(ctx, key(6)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b drops key 6", time.Second, func() bool { return lb.has(key(6)) })
	if lc.has(key(6)) {
		t.Fatal("an invalidation crossed prefixes")
	}
}

// Redis killed: calls fail fast, then are skipped during the backoff; a
// failed invalidation is retried; when Redis returns, the subscription
// comes back and flushes L1, and calls go through again.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRemote(t, srv.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var l local
	go r.Run(ctx, &l)
	eventually(t, "subscribed", 5*time.Second, func() bool { return l.flushes.Load() >= 1 })
	k := key(7)
	if err := r.Fill(ctx, &cache.Entry{Key: k, TokenID: "t"}, time.Minute); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if _, err := r.Get(ctx, []cache.Key{k}); err == nil {
		t.Fatal("Get on a dead Redis succeeded")
	}
	if _, err := r.Get(ctx, []cache.Key{k}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("second Get = %v, want ErrSkipped during the backoff", err)
	}
	if err := r.Invalidate(ctx, k); err == nil {
		t.Fatal("Invalidate on a dead Redis succeeded")
	}
	if r.PendingInvalidations() != 1 {
		t.Fatalf("pending invalidations %d, want 1", r.PendingInvalidations())
	}
	flushes := l.flushes.Load()

	srv.Restart()
	eventually(t, "resubscribed and flushed", 10*time.Second, func() bool { return l.flushes.Load() > flushes })
	eventually(t, "invalidation retried", 10*time.Second, func() bool { return r.PendingInvalidations() == 0 })
	eventually(t, "calls go through again", 5*time.Second, func() bool {
		return r.Fill(ctx, &cache.Entry{Key: key(8), TokenID: "t"}, time.Minute) == nil
	})
	if e, err := r.Get(ctx, []cache.Key{key(8)}); err != nil || e == nil {
		t.Fatalf("Get after restart = %v, %v", e, err)
	}
	// The retried invalidation left its tombstone.
	if n, err := r.client.Exists(ctx, r.tombstoneKey(k)).Result(); err != nil || n != 1 {
		t.Fatalf("tombstone after retry: %d, %v", n, err)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		addrs   []string
		master  string
		cluster bool
		db      int
		tls     bool
		user    string
		pass    string
	}{
		{url: "redis://localhost", addrs: []string{"localhost:6379"}},
		{url: "redis://:secret@10.0.0.1:6380/2", addrs: []string{"10.0.0.1:6380"}, db: 2, pass: "secret"},
		{url: "rediss://u:p@cache.example.com", addrs: []string{"cache.example.com:6379"}, tls: true, user: "u", pass: "p"},
		{url: "redis+sentinel://s1,s2:26380,s3/mymaster/1", addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, master: "mymaster", db: 1},
		{url: "redis+cluster://n1:7000,n2:7001", addrs: []string{"n1:7000", "n2:7001"}, cluster: true},
		{url: "rediss+cluster://n1", addrs: []string{"n1:6379"}, cluster: true, tls: true},
	} {
		o, err := ParseURL(tc.url, 0)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if len(o.Addrs) != len(tc.addrs) || o.MasterName != tc.master || o.IsClusterMode != tc.cluster || o.DB != tc.db ||
			(o.TLSConfig != nil) != tc.tls || o.Username != tc.user || o.Password != tc.pass {
			t.Errorf("%s: got %+v", tc.url, o)
			continue
		}
		for i := range tc.addrs {
			if o.Addrs[i] != tc.addrs[i] {
				t.Errorf("%s: addrs %v", tc.url, o.Addrs)
			}
		}
		if o.ReadTimeout != DefaultTimeout || o.MaxRetries != -1 {
			t.Errorf("%s: timeouts not bounded: %+v", tc.url, o)
		}
	}
	for _, bad := range []string{"http://x", "redis://a,b", "redis+sentinel://s1", "redis+cluster://n1/3", "redis://h/x", "redis://", "redis+foo://h", "redis://[::1", "redis://h:0", "redis://h:99999"} {
		if _, err := ParseURL(bad, 0); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := ParseURL("redis://:hunter2@h:port", 0); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password or is missing: %v", err)
	}
}

package rediscache

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/testwait"
)

// roundTrips is a go-redis hook on a real client: it counts the GETs sent
// alone, the MGETs and the pipelines of GETs (and the keys they carry), and
// can hold the next GET before it is sent, or the next shared read (an MGET
// or a pipeline) before it is sent or after its answers were read, until
// the test releases it.
type roundTrips struct {
	singles, pipelines, piped atomic.Int64
	// mgets counts MGETs and mgot the keys they carried.
	mgets, mgot atomic.Int64
	// Each hold fires once.
	beforeGet, beforeShared, afterShared atomic.Pointer[func()]
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "get":
			h.singles.Add(1)
		case "mget":
			h.mgets.Add(1)
			h.mgot.Add(int64(len(cmd.Args()) - 1))
			return h.shared(func() error { return next(ctx, cmd) })
		default:
			return next(ctx, cmd)
		}
		if f := h.beforeGet.Swap(nil); f != nil {
			(*f)()
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() != "get" {
				return next(ctx, cmds)
			}
		}
		h.pipelines.Add(1)
		h.piped.Add(int64(len(cmds)))
		return h.shared(func() error { return next(ctx, cmds) })
	}
}

func (h *roundTrips) shared(send func() error) error {
	if f := h.beforeShared.Swap(nil); f != nil {
		(*f)()
	}
	err := send()
	if f := h.afterShared.Swap(nil); f != nil {
		(*f)()
	}
	return err
}

// hold arms slot; reached is closed when a round trip gets there, which
// then waits for release.
func hold(slot *atomic.Pointer[func()]) (reached chan struct{}, release func()) {
	reached, gate := make(chan struct{}), make(chan struct{})
	f := func() {
		close(reached)
		<-gate
	}
	slot.Store(&f)
	return reached, func() { close(gate) }
}

func entryFor(i int) *cache.Entry {
	return &cache.Entry{Key: key(byte(i)), TokenID: fmt.Sprintf("t%d", i), Scopes: []string{"read"}}
}

// fillWithBlocker fills the entries of keys 1..n, returned, and of key 50,
// the blocker whose read the tests hold.
func fillWithBlocker(t *testing.T, r *Remote, n int) []cache.Key {
	t.Helper()
	var keys []cache.Key
	for i := 1; i <= n; i++ {
		if err := r.Fill(context.Background(), entryFor(i), time.Minute); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key(byte(i)))
	}
	if err := r.Fill(context.Background(), entryFor(50), time.Minute); err != nil {
		t.Fatal(err)
	}
	return keys
}

type got struct {
	i   int
	e   *cache.Entry
	err error
}

// Gets that arrive while a read is in flight wait and go in one round
// trip (an MGET on one node, a pipeline of GETs in a Cluster), each
// answered with its own entry, or none: present and absent keys, and Gets
// of several keys (a key ring's digests). Mutation: getBatch appending
// every found value to the first query's answers answers the others
// nothing.
func TestConcurrentGetsShareOneRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		testGetsShareOneRoundTrip(t, redistest.URL(t), false)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		testGetsShareOneRoundTrip(t, redistest.StartCluster(t).URL, true)
	})
}

func testGetsShareOneRoundTrip(t *testing.T, url string, cluster bool) {
	r := newRemote(t, url, redistest.Prefix(), time.Second)
	h := &roundTrips{}
	r.client.AddHook(h)
	ctx := context.Background()
	// A new Cluster answers CLUSTERDOWN until all its slots are served.
	for i := 1; i <= 20; i++ {
		testwait.Until(t, "Redis to take a fill", func() bool { return r.Fill(ctx, entryFor(i), time.Minute) == nil })
	}
	// Every key's slot answering (a Cluster's may still be moving).
	testwait.Until(t, "every key to be readable", func() bool {
		for _, i := range []byte{99, 1, 21, 22, 23, 24, 25, 30, 31, 32, 5} {
			if _, err := r.Get(ctx, []cache.Key{key(i)}); err != nil {
				return false
			}
		}
		return true
	})
	h.singles.Store(0)
	h.pipelines.Store(0)
	h.piped.Store(0)
	h.mgets.Store(0)
	h.mgot.Store(0)
	reached, release := hold(&h.beforeGet)
	first := make(chan got, 1)
	go func() {
		e, err := r.Get(ctx, []cache.Key{key(99)})
		first <- got{99, e, err}
	}()
	testwait.Receive(t, reached, "the held read to be reached")
	// 1-25 alone (21-25 absent), then pairs: an absent key before a
	// present one, and two absent ones.
	queries := map[int][]cache.Key{}
	for i := 1; i <= 25; i++ {
		queries[i] = []cache.Key{key(byte(i))}
	}
	queries[101] = []cache.Key{key(30), key(5)}
	queries[102] = []cache.Key{key(31), key(32)}
	out := make(chan got, len(queries))
	keys := 0
	for i, ks := range queries {
		keys += len(ks)
		go func() {
			e, err := r.Get(ctx, ks)
			out <- got{i, e, err}
		}()
	}
	testwait.Until(t, "every Get to queue behind the read in flight", func() bool { return r.gets.Waiting() == len(queries) })
	release()
	if g := testwait.Receive(t, first, "the blocker's answer"); g.err != nil || g.e != nil {
		t.Fatalf("absent key: %+v, %v", g.e, g.err)
	}
	for range queries {
		g := testwait.Receive(t, out, "a queued answer")
		want := ""
		switch {
		case g.i <= 20:
			want = fmt.Sprintf("t%d", g.i)
		case g.i == 101:
			want = "t5"
		}
		if g.err != nil || (want == "") != (g.e == nil) || g.e != nil && g.e.TokenID != want {
			t.Errorf("Get %d = %+v, %v; want token %q", g.i, g.e, g.err, want)
		}
	}
	s, p, c, m, mk := h.singles.Load(), h.pipelines.Load(), h.piped.Load(), h.mgets.Load(), h.mgot.Load()
	switch {
	case !cluster && (s != 1 || p != 0 || m != 1 || mk != int64(keys)):
		t.Fatalf("round trips: %d GET, %d pipelines, %d MGET of %d keys; want 1 GET and 1 MGET of %d", s, p, m, mk, keys)
	case cluster && (s != 1 || m != 0 || p < 1 || c != int64(keys)):
		// go-redis splits a Cluster pipeline by node: one per master at most.
		t.Fatalf("round trips: %d GET, %d MGET, %d pipelines of %d GETs; want 1 GET and pipelines of %d", s, m, p, c, keys)
	}
}

// sharedGets starts the blocker's Get, holds it in flight, queues a Get
// for each of keys behind it through c (L1 off), and returns once they wait.
func sharedGets(t *testing.T, c *cache.Cache, r *Remote, h *roundTrips, blocker cache.Key, keys []cache.Key,
	load func(k cache.Key) cache.Loader) (release func(), first chan got, out chan got) {
	t.Helper()
	reached, release := hold(&h.beforeGet)
	first = make(chan got, 1)
	go func() {
		e, err := c.Get(context.Background(), []cache.Key{blocker}, load(blocker))
		first <- got{int(blocker[0]), e, err}
	}()
	testwait.Receive(t, reached, "the held read to be reached")
	out = make(chan got, len(keys))
	for _, k := range keys {
		go func() {
			e, err := c.Get(context.Background(), []cache.Key{k}, load(k))
			out <- got{int(k[0]), e, err}
		}()
	}
	testwait.Until(t, "the Gets to queue", func() bool { return r.gets.Waiting() == len(keys) })
	return release, first, out
}

// Redis hung (SIGSTOP) or killed while a shared read is on its way:
// every validation in it is answered from the store, none fails and none
// is answered wrong. Mutation: fill treating an L2 error as a miss
// without loading (return nil) fails every one.
func TestRedisFailingMidReadFallsBackToStore(t *testing.T) {
	for _, fault := range []string{"SIGSTOP", "kill"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			client, err := NewClient(srv.URL(), 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			h := &roundTrips{}
			client.AddHook(h)
			r, err := New(Config{Client: client, Timeout: 300 * time.Millisecond, Backoff: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			c, err := cache.New(cache.Config{L1Size: -1, Remote: r})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			keys := fillWithBlocker(t, r, 10)
			var loads atomic.Int64
			load := func(k cache.Key) cache.Loader {
				return func(context.Context) (*cache.Entry, error) {
					loads.Add(1)
					return entryFor(int(k[0])), nil
				}
			}
			release, first, out := sharedGets(t, c, r, h, key(50), keys, load)
			// The shared read holds before it is sent; Redis fails.
			pipeReached, releasePipe := hold(&h.beforeShared)
			release()
			if g := testwait.Receive(t, first, "the blocker's answer"); g.err != nil || g.e == nil || g.e.TokenID != "t50" {
				t.Fatalf("blocker: %+v, %v", g.e, g.err)
			}
			testwait.Receive(t, pipeReached, "the shared read to be reached")
			if fault == "SIGSTOP" {
				srv.Pause()
				t.Cleanup(srv.Resume)
			} else {
				srv.Stop()
			}
			releasePipe()
			for range keys {
				g := testwait.Receive(t, out, "a queued answer")
				if g.err != nil || g.e == nil || g.e.TokenID != fmt.Sprintf("t%d", g.i) {
					t.Errorf("key %d with Redis failing: %+v, %v; want the store's entry", g.i, g.e, g.err)
				}
			}
			if n := loads.Load(); n != int64(len(keys)) {
				t.Fatalf("%d store loads, want %d (one per validation in the failed read)", n, len(keys))
			}
		})
	}
}

// A shared read that read entries before their tokens were revoked,
// and answers after the revocations were applied here, answers none of
// them live: the stale copies are refused and the store (revoked now)
// answers. Later Gets read the tombstoned keys: revoked too. Mutation:
// fill ignoring correct's verdict on an L2 hit answers them live.
func TestRevocationDuringSharedReadNeverAnsweredLive(t *testing.T) {
	t.Parallel()
	r := newRemote(t, redistest.URL(t), redistest.Prefix(), time.Second)
	h := &roundTrips{}
	r.client.AddHook(h)
	c, err := cache.New(cache.Config{L1Size: -1, Remote: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	keys := fillWithBlocker(t, r, 5)
	var revoked atomic.Bool
	revokedAt := time.Now().UTC().Truncate(time.Microsecond)
	load := func(k cache.Key) cache.Loader {
		return func(context.Context) (*cache.Entry, error) {
			e := entryFor(int(k[0]))
			if revoked.Load() && k != key(50) {
				e.RevokedAt = revokedAt
			}
			return e, nil
		}
	}
	release, first, out := sharedGets(t, c, r, h, key(50), keys, load)
	// The shared read holds after reading the live copies.
	pipeRead, releasePipe := hold(&h.afterShared)
	release()
	testwait.Receive(t, first, "the blocker's answer")
	testwait.Receive(t, pipeRead, "the shared read")
	revoked.Store(true) // the store committed
	for i, k := range keys {
		c.Revoke(k, fmt.Sprintf("t%d", i+1), revokedAt, time.Time{})
		if err := c.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	releasePipe()
	now := time.Now()
	for range keys {
		if g := testwait.Receive(t, out, "a queued answer"); g.err != nil || g.e == nil || g.e.Live(now) {
			t.Errorf("key %d answered %+v, %v after its revocation was applied", g.i, g.e, g.err)
		}
	}
	for _, k := range keys {
		if e, err := c.Get(ctx, []cache.Key{k}, load(k)); err != nil || e == nil || e.Live(now) {
			t.Errorf("after the revocations: %+v, %v", e, err)
		}
	}
}

package rediscache

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/redistest"
)

func key(b byte) cache.Key {
	var k cache.Key
	k[0], k[31] = b, 0xAA
	return k
}

// testTimeout bounds each Redis call in tests that are not about timeouts:
// on a loaded CI machine a local Redis can take hundreds of milliseconds to
// answer, and a test that fails then proves nothing about the cache.
const testTimeout = 10 * time.Second

// newRemote returns a Remote on url whose calls time out only after
// testTimeout and which, after a failure, skips Redis for backoff.
func newRemote(t *testing.T, url, prefix string, backoff time.Duration) *Remote {
	t.Helper()
	client, err := NewClient(url, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r, err := New(Config{Client: client, Prefix: prefix, Timeout: testTimeout, Backoff: backoff})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFillGetInvalidate(t *testing.T) {
	t.Parallel()
	r := newRemote(t, redistest.URL(t), redistest.Prefix(), time.Second)
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
	r := newRemote(t, url, prefix, time.Second)
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

// sink records what a RevocationFeed hands over.
type sink struct {
	mu     sync.Mutex
	offers []Revocation
	wakes  atomic.Int64
}

func (s *sink) Offer(r Revocation) {
	s.mu.Lock()
	s.offers = append(s.offers, r)
	s.mu.Unlock()
}

func (s *sink) Wake() { s.wakes.Add(1) }

func (s *sink) has(seq int64) (Revocation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.offers {
		if r.Seq == seq {
			return r, true
		}
	}
	return Revocation{}, false
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

// newFeed returns a feed that takes a subscription for dead only after a
// minute of silence: on a loaded machine a short bound fires on a live
// subscription, and a message published while it resubscribes is lost
// (keymint reads the store's log then; the tests' sink does not).
func newFeed(t *testing.T, url, prefix string) *RevocationFeed {
	return newFeedDeadAfter(t, url, prefix, time.Minute, testTimeout)
}

// newHangFeed returns a feed that notices a hung node within seconds, for
// the tests of that detection. A false alarm under load only wakes the sink
// early; those tests never count on a message surviving one.
func newHangFeed(t *testing.T, url, prefix string) *RevocationFeed {
	return newFeedDeadAfter(t, url, prefix, 2*time.Second, 0)
}

// newFeedDeadAfter returns a feed with deadAfter whose calls are bounded by
// timeout (zero: keymint's default).
func newFeedDeadAfter(t *testing.T, url, prefix string, deadAfter, timeout time.Duration) *RevocationFeed {
	t.Helper()
	client, err := NewRevocationClient(url, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return NewRevocationFeed(RevocationFeedConfig{Client: client, Prefix: prefix, Timeout: timeout,
		PingInterval: min(deadAfter/4, time.Second), DeadAfter: deadAfter})
}

func TestRevocationFeedReachesOtherReplicas(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	a, b := newFeed(t, url, prefix), newFeed(t, url, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sb sink
	go b.Run(ctx, &sb)
	eventually(t, "subscription wakes the follower", 10*time.Second, func() bool { return sb.wakes.Load() >= 1 })
	want := Revocation{Seq: 42, TokenID: "tok-1", Key: key(5), At: time.Unix(100, 5).UTC(), NotAfter: time.Unix(200, 0).UTC(), Rotated: true}
	if err := a.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	var got Revocation
	eventually(t, "replica b hears the revocation", 10*time.Second, func() bool {
		var ok bool
		got, ok = sb.has(42)
		return ok
	})
	if got != want {
		t.Fatalf("heard %+v, want %+v", got, want)
	}
	// Another prefix is another keymint: it hears nothing.
	c := newFeed(t, url, redistest.Prefix())
	var sc sink
	go c.Run(ctx, &sc)
	eventually(t, "c subscribed", 10*time.Second, func() bool { return sc.wakes.Load() >= 1 })
	if err := a.Publish(ctx, Revocation{Seq: 43, TokenID: "tok-2", Key: key(6)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b hears seq 43", 10*time.Second, func() bool { _, ok := sb.has(43); return ok })
	if _, ok := sc.has(43); ok {
		t.Fatal("a revocation crossed prefixes")
	}
}

// A hung Redis (SIGSTOP) answers no ping: the feed notices without any
// help from go-redis, wakes the follower (which reads the store's log)
// and subscribes again; once Redis answers, revocations flow again.
func TestRevocationFeedDetectsHungRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := newHangFeed(t, srv.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s sink
	go f.Run(ctx, &s)
	eventually(t, "subscribed", 10*time.Second, func() bool { return s.wakes.Load() >= 1 })
	before := s.wakes.Load()
	srv.Pause()
	eventually(t, "a silent subscription is noticed", 30*time.Second, func() bool { return s.wakes.Load() > before })
	srv.Resume()
	pub := newFeed(t, srv.URL(), "")
	eventually(t, "revocations flow after the node answers again", 30*time.Second, func() bool {
		_ = pub.Publish(ctx, Revocation{Seq: 7, TokenID: "t", Key: key(7)})
		_, ok := s.has(7)
		return ok
	})
}

// Redis killed: calls fail fast, then are skipped during the backoff; a
// failed invalidation is retried when Redis returns. The backoff is an hour
// so that "skipped" does not depend on how fast the two calls follow each
// other; the retry a Run tick would do is called directly.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRemote(t, srv.URL(), "", time.Hour)
	ctx := context.Background()
	k := key(7)
	if err := r.Fill(ctx, &cache.Entry{Key: k, TokenID: "t"}, time.Minute); err != nil {
		t.Fatal(err)
	}

	logs := &messageLog{}
	r.log = slog.New(logs)

	srv.Stop()
	if _, err := r.Get(ctx, []cache.Key{k}); err == nil {
		t.Fatal("Get on a dead Redis succeeded")
	}
	// The outage is logged once, at its first failure (`Swap(...) == 0`
	// negated logs the second failure instead; the Invalidate below is one).
	if n := logs.count(slog.LevelWarn, "redis failed; validating from the store meanwhile"); n != 1 {
		t.Fatalf("after the first failure: %d outage warnings, want 1", n)
	}
	if _, err := r.Get(ctx, []cache.Key{k}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("second Get = %v, want ErrSkipped during the backoff", err)
	}
	if err := r.Fill(ctx, &cache.Entry{Key: key(8), TokenID: "t"}, time.Minute); !errors.Is(err, ErrSkipped) {
		t.Fatalf("Fill = %v, want ErrSkipped during the backoff", err)
	}
	if err := r.Invalidate(ctx, k); err == nil || errors.Is(err, ErrSkipped) {
		t.Fatalf("Invalidate on a dead Redis = %v, want it tried and failed", err)
	}
	if r.PendingInvalidations() != 1 {
		t.Fatalf("pending invalidations %d, want 1", r.PendingInvalidations())
	}
	r.retryPending(ctx)
	if r.PendingInvalidations() != 1 {
		t.Fatalf("pending invalidations %d after a failed retry, want 1", r.PendingInvalidations())
	}

	srv.Restart()
	eventually(t, "invalidation retried", 30*time.Second, func() bool {
		r.retryPending(ctx)
		return r.PendingInvalidations() == 0
	})
	// The retry's success ended the backoff: calls go through again.
	if err := r.Fill(ctx, &cache.Entry{Key: key(8), TokenID: "t"}, time.Minute); err != nil {
		t.Fatalf("Fill after the retry: %v", err)
	}
	if e, err := r.Get(ctx, []cache.Key{key(8)}); err != nil || e == nil {
		t.Fatalf("Get after restart = %v, %v", e, err)
	}
	if n := logs.count(slog.LevelWarn, "redis failed; validating from the store meanwhile"); n != 1 {
		t.Errorf("after the outage: %d outage warnings, want 1 (one an outage)", n)
	}
	if n := logs.count(slog.LevelInfo, "redis reachable again"); n != 1 {
		t.Errorf("after the outage: %d recovery messages, want 1", n)
	}
	// The retried invalidation left its tombstone.
	if n, err := r.client.Exists(ctx, r.tombstoneKey(k)).Result(); err != nil || n != 1 {
		t.Fatalf("tombstone after retry: %d, %v", n, err)
	}
}

// Run retries a failed invalidation on its own, every Backoff.
func TestRunRetriesInvalidations(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newRemote(t, srv.URL(), "", 100*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.Stop()
	if err := r.Invalidate(ctx, key(9)); err == nil {
		t.Fatal("Invalidate on a dead Redis succeeded")
	}
	go r.Run(ctx)
	srv.Restart()
	eventually(t, "Run retried the invalidation", 30*time.Second, func() bool { return r.PendingInvalidations() == 0 })
	if n, err := r.client.Exists(ctx, r.tombstoneKey(key(9))).Result(); err != nil || n != 1 {
		t.Fatalf("tombstone after Run's retry: %d, %v", n, err)
	}
}

// Revocation calls get a client whose read timeout allows their own bound:
// go-redis cuts every read at the connection's ReadTimeout, whatever the
// context says, so the validation client's 50ms would cut them short.
func TestRevocationClientTimeouts(t *testing.T) {
	t.Parallel()
	c, err := NewRevocationClient("redis://127.0.0.1:1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.ReadTimeout < DefaultRevocationTimeout || o.WriteTimeout < DefaultRevocationTimeout {
		t.Fatalf("revocation client timeouts read %v write %v, want at least %v", o.ReadTimeout, o.WriteTimeout, DefaultRevocationTimeout)
	}
	r, err := New(Config{Client: c, RevocationClient: c})
	if err != nil {
		t.Fatal(err)
	}
	if r.revTime < DefaultRevocationTimeout {
		t.Fatalf("invalidation bound %v", r.revTime)
	}
}

func TestRevocationMessageRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []Revocation{
		{Seq: 1, TokenID: "a", Key: key(1)},
		{Seq: 1 << 40, TokenID: "0b9f3c1e-uuid", Key: key(2), At: time.Unix(1, 2).UTC(), NotAfter: time.Unix(3, 4).UTC(), Rotated: true},
	} {
		got, ok := decodeRevocation(string(encodeRevocation(r)))
		if !ok || got != r {
			t.Errorf("round trip of %+v = %+v, %v", r, got, ok)
		}
	}
	// A message must carry a token id and a sequence: a head alone
	// (`len(p) <= revocationHead` → `<`) and seq 0 (`r.Seq > 0` → `>=`)
	// are refused.
	headOnly := encodeRevocation(Revocation{Seq: 1, Key: key(3)})
	seqZero := encodeRevocation(Revocation{Seq: 0, TokenID: "a", Key: key(4)})
	for _, bad := range []string{"", "\x02", string(make([]byte, revocationHead+1)), "\x01" + strings.Repeat("x", 60), string(headOnly), string(seqZero)} {
		if _, ok := decodeRevocation(bad); ok {
			t.Errorf("decoded garbage %q", bad)
		}
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
		// An empty user info ("@" first: `i >= 0` → `> 0` refused it).
		{url: "redis://@h:1/0", addrs: []string{"h:1"}},
		// The highest port (`n > 65535` → `>=` refused it).
		{url: "redis://h:65535", addrs: []string{"h:65535"}},
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
	// Every call waits at most the timeout; a dial 4 times as long, and
	// never under 200 ms (`4*timeout`, `200*time.Millisecond` with `/`
	// fail it).
	for _, tc := range []struct{ timeout, dial time.Duration }{
		{0, 200 * time.Millisecond}, {10 * time.Millisecond, 200 * time.Millisecond}, {time.Second, 4 * time.Second},
	} {
		o, err := ParseURL("redis://h", tc.timeout)
		if err != nil {
			t.Fatal(err)
		}
		call := tc.timeout
		if call == 0 {
			call = DefaultTimeout
		}
		if o.DialTimeout != tc.dial || o.ReadTimeout != call || o.WriteTimeout != call || o.PoolTimeout != call {
			t.Errorf("timeout %v: dial %v, read %v, write %v, pool %v; want dial %v and %v for each call",
				tc.timeout, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, tc.dial, call)
		}
	}
	for _, bad := range []string{"http://x", "redis://a,b", "redis+sentinel://s1", "redis+cluster://n1/3", "redis://h/x", "redis://", "redis+foo://h", "redis://[::1", "redis://h:0", "redis://h:99999"} {
		if _, err := ParseURL(bad, 0); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// No error quotes a password, wherever the URL goes wrong.
	for _, bad := range []string{"redis://:hunter2@h:port", "redis://u:hunter2@h/x", "redis://u:hunter2@h/1/2", "redis://u:hunter2@a,b",
		"redis+sentinel://u:hunter2@s1", "redis+sentinel://u:hunter2@s1/m/x?sentinel_password=hunter2", "redis+cluster://u:hunter2@n1/3",
		"redis://u:hunter2@h?pool_size=1", "redis://u:hunter2@h?sentinel_password=hunter2", "redis://u:hunter2@h/%zz", "redis+foo://u:hunter2@h"} {
		if _, err := ParseURL(bad, 0); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password or is missing: %v", err)
		}
	}
}

// Sentinel: the user info is the master's, sentinel_password the
// sentinels'; go-redis's own options in the query are not taken (keymint
// bounds timeouts, retries and the pool itself).
func TestParseURLCredentialsAndOptions(t *testing.T) {
	t.Parallel()
	o, err := ParseURL("rediss+sentinel://app:m-pass@s1,[2001:db8::1]:26380/mymaster/3?sentinel_password=s-pass", 0)
	if err != nil {
		t.Fatal(err)
	}
	if o.MasterName != "mymaster" || o.DB != 3 || o.Username != "app" || o.Password != "m-pass" || o.SentinelUsername != "" ||
		o.SentinelPassword != "s-pass" || o.TLSConfig == nil || o.TLSConfig.ServerName != "s1" || o.TLSConfig.MinVersion != tls.VersionTLS12 ||
		!slices.Equal(o.Addrs, []string{"s1:26379", "[2001:db8::1]:26380"}) {
		t.Errorf("got %+v", o)
	}
	o, err = ParseURL("redis+cluster://u:p@[::1]:7000,n2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !o.IsClusterMode || o.Username != "u" || o.Password != "p" || !slices.Equal(o.Addrs, []string{"[::1]:7000", "n2:6379"}) {
		t.Errorf("got %+v", o)
	}
	for _, q := range []string{"pool_size=1000", "max_retries=5", "dial_timeout=1h", "db=3", "addr=evil:6379"} {
		if _, err := ParseURL("redis://h?"+q, 0); err == nil {
			t.Errorf("?%s: no error", q)
		}
	}
}

// A Sentinel master SIGSTOPped: the feed notices the silent subscription,
// the sentinels fail over to the replica, and the feed's new subscription
// is on the new master, where revocations flow again.
func TestRevocationFeedMovesOffHungSentinelMaster(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	prefix := redistest.Prefix()
	f := newHangFeed(t, set.URL, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s sink
	go f.Run(ctx, &s)
	eventually(t, "subscribed", 20*time.Second, func() bool { return s.wakes.Load() >= 1 })
	_, sentinelPort := set.Node("sentinel-1")
	_, replicaPort := set.Node("replica")
	before := s.wakes.Load()
	set.Pause("master")
	defer set.Resume("master")
	eventually(t, "the silent subscription is noticed", 30*time.Second, func() bool { return s.wakes.Load() > before })

	sentinel := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + itoa(sentinelPort)})
	defer sentinel.Close()
	eventually(t, "the sentinels promote the replica", 60*time.Second, func() bool {
		addr, err := sentinel.GetMasterAddrByName(ctx, "keymint").Result()
		return err == nil && len(addr) == 2 && addr[1] == itoa(replicaPort)
	})
	pub := newFeed(t, set.URL, prefix)
	seq := int64(100)
	eventually(t, "revocations flow through the new master", 60*time.Second, func() bool {
		seq++
		_ = pub.Publish(ctx, Revocation{Seq: seq, TokenID: "t", Key: key(9)})
		time.Sleep(50 * time.Millisecond)
		_, ok := s.has(seq)
		return ok
	})
	promoted := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + itoa(replicaPort)})
	defer promoted.Close()
	n, err := promoted.PubSubNumSub(ctx, f.Channel()).Result()
	if err != nil || n[f.Channel()] < 1 {
		t.Fatalf("the new master has %v subscribers on %s (%v): the subscription did not move", n, f.Channel(), err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNewDefaults holds Config's documented zero values (Prefix
// "keymint:", Timeout 50 ms, Backoff 1 s, TombstoneTTL 1 min, RetryFor
// 10 min, RevocationTimeout) and that a value given is kept: each `<= 0`
// turned into `< 0` or `> 0` fails it. New dials nothing.
func TestNewDefaults(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	rev := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rev.Close() })
	type got struct {
		prefix                                    string
		timeout, backoff, tombstone, retry, revTO time.Duration
	}
	read := func(r *Remote) got {
		return got{r.prefix, r.timeout, r.backoff, r.tombstone, r.retryFor, r.revTime}
	}
	defaults := got{DefaultPrefix, DefaultTimeout, DefaultBackoff, DefaultTombstoneTTL, 10 * time.Minute, DefaultRevocationTimeout}
	for name, cfg := range map[string]Config{
		"zero":     {Client: c, RevocationClient: rev},
		"negative": {Client: c, RevocationClient: rev, Timeout: -1, Backoff: -1, TombstoneTTL: -1, RetryFor: -1, RevocationTimeout: -1},
	} {
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if g := read(r); g != defaults {
			t.Errorf("%s: New kept %+v, want the defaults %+v", name, g, defaults)
		}
	}
	given := got{"p:", 7 * time.Millisecond, 3 * time.Second, 2 * time.Minute, time.Hour, 9 * time.Second}
	r, err := New(Config{Client: c, RevocationClient: rev, Prefix: given.prefix, Timeout: given.timeout,
		Backoff: given.backoff, TombstoneTTL: given.tombstone, RetryFor: given.retry, RevocationTimeout: given.revTO})
	if err != nil {
		t.Fatal(err)
	}
	if g := read(r); g != given {
		t.Errorf("New made %+v of the values given, want %+v", g, given)
	}
	// Without a revocation client of its own, invalidations use the
	// validation client and its timeout.
	r, err = New(Config{Client: c, Timeout: given.timeout})
	if err != nil {
		t.Fatal(err)
	}
	if r.revClient != c || r.revTime != given.timeout {
		t.Errorf("no RevocationClient: invalidations on %p with %v, want the validation client %p and its %v", r.revClient, r.revTime, c, given.timeout)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Client: no error")
	}
}

// messageLog is a slog.Handler keeping each record's level and message.
type messageLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *messageLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *messageLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *messageLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *messageLog) WithGroup(string) slog.Handler      { return l }

// count is how many records of level carry msg.
func (l *messageLog) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// TestRevocationFeedDefaults holds RevocationFeedConfig's zero values (the
// channel under DefaultPrefix, DefaultRevocationTimeout,
// DefaultPingInterval, DefaultDeadAfter) and that values given are kept:
// each `== ""` or `<= 0` negated, or `<= 0` → `< 0`, fails it.
func TestRevocationFeedDefaults(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	type got struct {
		channel                      string
		timeout, interval, deadAfter time.Duration
	}
	read := func(f *RevocationFeed) got { return got{f.Channel(), f.timeout, f.pingInterval, f.deadAfter} }
	want := got{DefaultPrefix + "revocations", DefaultRevocationTimeout, DefaultPingInterval, DefaultDeadAfter}
	if g := read(NewRevocationFeed(RevocationFeedConfig{Client: c})); g != want {
		t.Errorf("zero config: %+v, want %+v", g, want)
	}
	if g := read(NewRevocationFeed(RevocationFeedConfig{Client: c, Timeout: -1, PingInterval: -1, DeadAfter: -1})); g != want {
		t.Errorf("negative durations: %+v, want the defaults %+v", g, want)
	}
	given := got{"p:revocations", 3 * time.Second, time.Second, 5 * time.Second}
	if g := read(NewRevocationFeed(RevocationFeedConfig{Client: c, Prefix: "p:", Timeout: given.timeout,
		PingInterval: given.interval, DeadAfter: given.deadAfter})); g != given {
		t.Errorf("values given: %+v, want %+v", g, given)
	}
}

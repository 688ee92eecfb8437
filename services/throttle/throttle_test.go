package throttle

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache/redistest"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newLocal(t *testing.T) (*Local, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	l, err := NewLocal(0, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	if l, err := ParseLimit("5/20s"); err != nil || l != (Limit{5, 20 * time.Second}) || l.String() != "5/20s" {
		t.Fatalf("ParseLimit(5/20s) = %v, %v", l, err)
	}
	for _, off := range []string{"off", "0"} {
		if l, err := ParseLimit(off); err != nil || l.Burst != 0 || l.String() != "off" {
			t.Fatalf("ParseLimit(%s) = %v, %v", off, l, err)
		}
	}
	for _, bad := range []string{"", "5", "x/1s", "0/1s", "5/0s", "5/-1s", "5/soon", "5/48h"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

func TestLocalGCRA(t *testing.T) {
	t.Parallel()
	l, c := newLocal(t)
	ctx := context.Background()
	lim := Limit{Burst: 3, Interval: 10 * time.Second}
	for i := range 3 {
		if ok, _, _ := l.Take(ctx, "k", lim); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	ok, retry, _ := l.Take(ctx, "k", lim)
	if ok || retry != 10*time.Second {
		t.Fatalf("take beyond the burst = %v, retry %v; want refused, 10s", ok, retry)
	}
	// Refused takes take nothing: hammering does not push the key away.
	for range 100 {
		l.Take(ctx, "k", lim)
	}
	c.Advance(10 * time.Second)
	if ok, _, _ := l.Take(ctx, "k", lim); !ok {
		t.Fatal("one interval later the next take is refused")
	}
	if ok, _, _ := l.Take(ctx, "other", lim); !ok {
		t.Fatal("keys are not independent")
	}
	// Give returns a taken event.
	if err := l.Give(ctx, "k", lim); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := l.Take(ctx, "k", lim); !ok {
		t.Fatal("a given-back event cannot be taken again")
	}
	// A long quiet period resets the key.
	c.Advance(time.Hour)
	for i := range 3 {
		if ok, _, _ := l.Take(ctx, "k", lim); !ok {
			t.Fatalf("after an hour, take %d refused", i+1)
		}
	}
	if ok, _, _ := l.Take(ctx, "off", Limit{}); !ok {
		t.Fatal("a zero Limit refused")
	}
}

// concurrentTakes has n goroutines take one event of one key at once and
// returns how many were allowed.
func concurrentTakes(t *testing.T, l Limiter, key string, lim Limit, n int) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		allowed atomic.Int64
		start   = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			ok, _, err := l.Take(context.Background(), key, lim)
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(allowed.Load())
}

func TestConcurrentTakesAllCount(t *testing.T) {
	t.Parallel()
	lim := Limit{Burst: 20, Interval: time.Hour}
	l, _ := newLocal(t)
	if got := concurrentTakes(t, l, "k", lim, 300); got != lim.Burst {
		t.Fatalf("local: %d of 300 concurrent takes allowed, want exactly %d", got, lim.Burst)
	}
	t.Run("redis", func(t *testing.T) {
		r := newRedisLimiter(t, redistest.URL(t))
		if got := concurrentTakes(t, r, "k", lim, 300); got != lim.Burst {
			t.Fatalf("redis: %d of 300 concurrent takes allowed, want exactly %d", got, lim.Burst)
		}
	})
}

func newRedisLimiter(t *testing.T, url string) *Redis {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	// Generous bounds: a call that times out falls back to the in-process
	// count, and on a loaded machine a 200 ms bound fires on a live Redis,
	// where the tests below then see a replica's local answer instead of
	// the shared one (a take allowed that Redis refuses).
	opt.DialTimeout = 10 * time.Second
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	local, err := NewLocal(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRedis(RedisConfig{Client: client, Prefix: redistest.Prefix(), Fallback: local, Timeout: 10 * time.Second, Backoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Two limiters on one Redis (two replicas) count together; a refund is
// seen by both.
func TestRedisSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := redistest.URL(t)
	a := newRedisLimiter(t, url)
	b := newRedisLimiter(t, url)
	b.prefix = a.prefix
	ctx := context.Background()
	lim := Limit{Burst: 2, Interval: time.Hour}
	for _, l := range []*Redis{a, b} {
		if ok, _, err := l.Take(ctx, "k", lim); !ok || err != nil {
			t.Fatalf("take = %v, %v", ok, err)
		}
	}
	ok, retry, err := a.Take(ctx, "k", lim)
	if ok || err != nil || retry <= 59*time.Minute {
		t.Fatalf("third take on A = %v, retry %v, %v; want refused for about an hour", ok, retry, err)
	}
	if err := b.Give(ctx, "k", lim); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.Take(ctx, "k", lim); !ok {
		t.Fatal("an event B gave back cannot be taken on A")
	}
}

// With Redis gone, the limiter falls back to counting in process (neither
// open nor closed), and uses Redis again once it answers. The in-process
// count already holds what Redis granted this replica: an outage (or a
// Redis call that timed out after counting) grants no second burst.
func TestRedisDownFallsBackToLocal(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r := newRedisLimiter(t, rs.URL())
	ctx := context.Background()
	lim := Limit{Burst: 3, Interval: time.Hour}
	if ok, _, _ := r.Take(ctx, "k", lim); !ok {
		t.Fatal("first take refused")
	}
	rs.Stop()
	allowed := 0
	for range 10 {
		ok, _, err := r.Take(ctx, "k", lim)
		if err != nil {
			t.Fatalf("take with Redis down: %v", err)
		}
		if ok {
			allowed++
		}
	}
	if allowed != lim.Burst-1 {
		t.Fatalf("with Redis down %d of 10 takes allowed, want the rest of the burst, %d", allowed, lim.Burst-1)
	}
	rs.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		// A fresh key each time: the in-process count of a key granted
		// while Redis was skipped is spent.
		ok, _, _ := r.Take(ctx, "fresh"+strconv.Itoa(i), Limit{Burst: 1, Interval: time.Hour})
		if ok && !r.skipping() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the limiter never used Redis again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSignInProgressive(t *testing.T) {
	t.Parallel()
	l, c := newLocal(t)
	s, err := NewSignIn(SignInConfig{Limiter: l, Account: Limit{Burst: 5, Interval: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// guess makes failed attempts until refused, waiting what it is told,
	// and returns the waits.
	var waits []time.Duration
	// Bounded: a limiter that never refuses fails here, not by the test
	// binary's timeout (gremlins' `lim.Burst > 0` mutant hung it 8 minutes).
	for attempts := 0; len(waits) < 40; attempts++ {
		if attempts == 10_000 {
			t.Fatalf("10000 attempts, %d refused: the throttle does not throttle", len(waits)-1)
		}
		_, err := s.Begin(ctx, "victim@example.com", netip.Addr{})
		var th *Throttled
		if errors.As(err, &th) {
			waits = append(waits, th.RetryAfter)
			c.Advance(th.RetryAfter)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(waits) == 0 {
			waits = append(waits, 0)
		}
	}
	// 5 free, then 20 s apart, then (after 4×5) 5 minutes apart: the delay
	// grows, and there is always a next attempt (no lockout).
	if waits[1] != 20*time.Second || waits[len(waits)-1] < 4*time.Minute {
		t.Fatalf("waits = %v, want 20s steps growing to about 5m", waits)
	}
	// Another account is untouched.
	if _, err := s.Begin(ctx, "other@example.com", netip.Addr{}); err != nil {
		t.Fatalf("another account throttled: %v", err)
	}
}

// The README's numbers for the default 5/20s account limit, with both
// bounds, on the limiter's clock: 5 failures at once, then exactly one per
// 20 s, then after 4×5 exactly one per 15×20 s = 5 minutes, and never
// longer: however long an attack lasts, the next attempt (the owner's, with
// the right password) is told to wait at most 5 minutes and then gets in.
// The numbers are the documented ones, not the package's constants.
//
// Mutations: services/throttle/signin.go `Growth = 4` → `Growth = 2` (the
// slow tier starts after 10), `Slowdown = 15` → `Slowdown = 100000` (one
// attempt every 23 days: a lockout).
func TestSignInTiersAsDocumented(t *testing.T) {
	t.Parallel()
	l, c := newLocal(t)
	s, err := NewSignIn(SignInConfig{Limiter: l, Account: Limit{Burst: 5, Interval: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := c.Now()
	const bound = 5 * time.Minute
	// An attacker guessing as fast as it is let: each refusal waits the
	// Retry-After it was told. admitted holds when each guess was let in.
	var admitted []time.Duration
	// Bounded: a limiter that refuses everything fails here, not by the
	// test binary's timeout (gremlins' `Burst * Interval` → `/` mutant).
	for attempts := 0; len(admitted) < 1000; attempts++ {
		if attempts == 100_000 {
			t.Fatalf("100000 attempts, %d admitted: the throttle locks out", len(admitted))
		}
		_, err := s.Begin(ctx, "victim@example.com", netip.Addr{})
		var th *Throttled
		if errors.As(err, &th) {
			if th.RetryAfter > bound {
				t.Fatalf("after %d guesses: told to wait %v, more than %v", len(admitted), th.RetryAfter, bound)
			}
			c.Advance(th.RetryAfter)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		admitted = append(admitted, c.Now().Sub(start))
	}
	for i := range 5 {
		if admitted[i] != 0 {
			t.Fatalf("guess %d at %v, want all of the first 5 at once", i+1, admitted[i])
		}
	}
	for i := 5; i < 20; i++ {
		if gap := admitted[i] - admitted[i-1]; gap != 20*time.Second {
			t.Fatalf("guess %d came %v after the one before, want 20s (guesses 6-20)", i+1, gap)
		}
	}
	// Guesses 21 and 22 move from one pace to the other.
	for i := 20; i < 22; i++ {
		if gap := admitted[i] - admitted[i-1]; gap < 20*time.Second || gap > bound {
			t.Fatalf("guess %d came %v after the one before, want 20s to 5m", i+1, gap)
		}
	}
	for i := 22; i < len(admitted); i++ {
		if gap := admitted[i] - admitted[i-1]; gap != bound {
			t.Fatalf("guess %d came %v after the one before, want 5m (after 4×5)", i+1, gap)
		}
	}
	// After 1000 guesses, the owner: told at most 5 minutes, then admitted,
	// and a success gives its events back.
	_, err = s.Begin(ctx, "victim@example.com", netip.Addr{})
	var th *Throttled
	if errors.As(err, &th) {
		if th.RetryAfter > bound {
			t.Fatalf("the owner, after the attack: wait %v", th.RetryAfter)
		}
		c.Advance(th.RetryAfter)
		a, err := s.Begin(ctx, "victim@example.com", netip.Addr{})
		if err != nil {
			t.Fatalf("the owner, after waiting as told: %v", err)
		}
		a.Refund(ctx)
	} else if err != nil {
		t.Fatal(err)
	}
}

func TestSignInRefundAndScopes(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t)
	s, err := NewSignIn(SignInConfig{Limiter: l, Account: Limit{Burst: 2, Interval: time.Hour}, IP: Limit{Burst: 3, Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ip := netip.MustParseAddr("2001:db8:1:2::7")
	// Successes (refunded attempts) never count.
	for range 10 {
		a, err := s.Begin(ctx, "a@example.com", ip)
		if err != nil {
			t.Fatalf("a refunded attempt counted: %v", err)
		}
		a.Refund(ctx)
	}
	for range 2 {
		if _, err := s.Begin(ctx, "a@example.com", ip); err != nil {
			t.Fatal(err)
		}
	}
	var th *Throttled
	if _, err := s.Begin(ctx, "a@example.com", ip); !errors.As(err, &th) || th.RetryAfter < time.Second {
		t.Fatalf("third failure on the account = %v, want Throttled", err)
	}
	// The refused attempt gave back its IP event: one more account on this
	// address still gets a guess, then the address is spent, from anywhere
	// in its /64.
	if _, err := s.Begin(ctx, "b@example.com", ip); err != nil {
		t.Fatalf("IP refused early: %v", err)
	}
	if _, err := s.Begin(ctx, "c@example.com", netip.MustParseAddr("2001:db8:1:2::ffff")); !errors.As(err, &th) {
		t.Fatalf("fourth failure from the /64 = %v, want Throttled", err)
	}
	if _, err := s.Begin(ctx, "c@example.com", netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Fatalf("another /64 throttled: %v", err)
	}
	// A nil SignIn admits everything.
	var none *SignIn
	a, err := none.Begin(ctx, "x", ip)
	if err != nil {
		t.Fatal(err)
	}
	a.Refund(ctx)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	if AccountKey("a@example.com") == AccountKey("b@example.com") || len(AccountKey("a@example.com")) != 32 {
		t.Fatal("account keys collide or have the wrong size")
	}
	if IPKey(netip.MustParseAddr("::ffff:192.0.2.1")) != "192.0.2.1" || IPKey(netip.Addr{}) != "" ||
		IPKey(netip.MustParseAddr("2001:db8::1")) != "2001:db8::/64" {
		t.Fatal("IPKey")
	}
}

// A Redis that accepts connections and never answers (a frozen host) costs a
// sign-in at most the limiter's timeout, then the in-process count takes
// over until the backoff ends.
func TestRedisHungTimesOut(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		var held []net.Conn // open, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	// keymint's client (rediscache.NewClient) bounds calls by their context.
	client := redis.NewClient(&redis.Options{Addr: lis.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer client.Close()
	local, _ := NewLocal(0, nil)
	r, err := NewRedis(RedisConfig{Client: client, Fallback: local, Timeout: 50 * time.Millisecond, Backoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit{Burst: 2, Interval: time.Hour}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3 {
			ok, _, err := r.Take(context.Background(), "k", lim)
			if err != nil || ok != (i < 2) {
				t.Errorf("take %d with Redis hung = %v, %v", i, ok, err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a hung Redis held a take: no timeout")
	}
	if !r.skipping() {
		t.Fatal("after a timeout the limiter still asks Redis")
	}
}

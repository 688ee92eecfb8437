package e2e

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
)

// mintToken mints one token through the gRPC API with password credentials
// and returns its secret.
func mintToken(t testing.TB, srv *testServer, email, password string, scopes ...string) string {
	t.Helper()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	r, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t", Scopes: scopes})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return r.GetSecret()
}

// Two keymint servers sharing one PostgreSQL and one Redis: a token revoked
// through A is refused by B long before B's copy expires.
func TestRevocationReachesOtherReplica(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	base := testConfig(t)
	base.DatabaseURL = pgtest.NewDatabase(t)
	base.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	base.Cache.RedisURL = rs.URL()
	base.Cache.L1TTL = time.Minute // only the invalidation can end B's copy in time
	const email, password = "ops@example.com", "a long test password"
	createUser(t, base, email, "acme", password, false)
	cfgA, cfgB := base, base
	cfgA.DataDir, cfgB.DataDir = t.TempDir(), t.TempDir()
	a, b := startServer(t, cfgA), startServer(t, cfgB)

	secret := mintToken(t, a, email, password, "read")
	ctx := context.Background()
	req := &keymintv1.ValidateTokenRequest{Token: secret}
	for _, s := range []*testServer{a, b} {
		r, err := s.client.ValidateToken(ctx, req)
		if err != nil || !r.GetValid() {
			t.Fatalf("before the revoke: %v, %v", r, err)
		}
	}
	// Both replicas are subscribed by now, or will flush when they are.
	creds := metadata.NewOutgoingContext(ctx, metadata.Pairs("x-api-email", email, "x-api-password", password))
	vr, err := a.client.ValidateToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.RevokeToken(creds, &keymintv1.RevokeTokenRequest{Id: vr.GetTokenId()}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		r, err := b.client.ValidateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !r.GetValid() && r.GetReason() == keymintv1.ValidateTokenResponse_REVOKED {
			t.Logf("B refused the token %v after the revoke", time.Since(revoked))
			return
		}
		// Generous for a loaded machine, and still well inside B's
		// one-minute L1 TTL: only the invalidation can have ended B's copy.
		if time.Since(revoked) > 30*time.Second {
			t.Fatalf("B still answers %v more than 30 s after the revoke through A", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Redis killed in the middle of a validation load: no validation fails (the
// store answers), and once Redis is back keymint uses it again without a
// restart.
func TestRedisKilledDuringLoad(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	cfg := testConfig(t)
	cfg.Cache.RedisURL = rs.URL()
	// A short L1 TTL keeps the load reaching Redis and the store.
	cfg.Cache.L1TTL = 20 * time.Millisecond
	const email, password = "load@example.com", "a long test password"
	createUser(t, cfg, email, "acme", password, false)
	srv := startServer(t, cfg)
	var secrets []string
	for range 5 {
		secrets = append(secrets, mintToken(t, srv, email, password, "read"))
	}

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	entries := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, "keymint:t:*").Result()
		if err != nil {
			return -1
		}
		n := 0
		for _, k := range keys {
			if !strings.HasSuffix(k, ":x") {
				n++
			}
		}
		return n
	}

	var stop atomic.Bool
	var calls, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				// The server bounds a refill itself (the cache's LoadTimeout);
				// the test's own bound is only a backstop, generous for a loaded machine.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: secrets[i%len(secrets)]})
				cancel()
				calls.Add(1)
				if err != nil || !r.GetValid() {
					if failures.Add(1) == 1 {
						firstErr.Store(err)
					}
				}
			}
		}()
	}
	waitFor := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("Redis filled", 10*time.Second, func() bool { return entries() > 0 })
	rs.Stop()
	before := calls.Load()
	waitFor("validations go on without Redis", 10*time.Second, func() bool { return calls.Load() > before+200 })
	rs.Restart() // empty: no persistence
	waitFor("keymint fills Redis again", 15*time.Second, func() bool { return entries() > 0 })
	after := calls.Load()
	waitFor("validations go on", 10*time.Second, func() bool { return calls.Load() > after+200 })
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d validations failed; first: %v", n, calls.Load(), firstErr.Load())
	}
	t.Logf("%d validations, none failed", calls.Load())
}

package tokens_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tokens"
)

// Each test here proves one documented guarantee and names the one-line
// mutation of the code that makes it fail (each was applied and seen to).

func keyring(t testing.TB, ids ...string) *tokens.Keyring {
	t.Helper()
	text := ""
	for _, id := range ids {
		key := []byte(id + "-pepper-0123456789abcdef0123456789")[:32]
		text += id + ":" + base64.StdEncoding.EncodeToString(key) + "\n"
	}
	k, err := tokens.ParseKeyring(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A token minted under an older pepper validates, with and without the
// cache, once a new pepper is primary (README: "rotating the pepper
// invalidates nothing"), and its revocation takes.
//
// Mutation: services/tokens/lookup.go lookup offers only the primary digest,
// `keys := make([]cache.Key, s.keys.Len())` → `make([]cache.Key, 1)`.
func TestOlderPepperStillValidates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := tokens.New(tokens.Config{Store: f.store, Keyring: keyring(t, "old"), Format: f.fmt, Logger: quiet})
	m, err := old.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	rotated := keyring(t, "new", "old")
	for _, cached := range []bool{false, true} {
		cfg := tokens.Config{Store: f.store, Keyring: rotated, Format: f.fmt, Logger: quiet}
		if cached {
			c := newL1(t)
			cfg.Cache = c
		}
		svc := tokens.New(cfg)
		for range 2 { // a miss, then (cached) a hit
			if r := validate(t, svc, m.Secret); !r.Valid {
				t.Fatalf("cached=%v: an older-pepper token after the rotation: %+v", cached, r)
			}
		}
	}
	c := newL1(t)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: rotated, Format: f.fmt, Cache: c, Logger: quiet})
	if r := validate(t, svc, m.Secret); !r.Valid {
		t.Fatalf("before the revoke: %+v", r)
	}
	if _, err := svc.Revoke(authn.WithPrincipal(context.Background(), f.owner), m.Token.ID); err != nil {
		t.Fatal(err)
	}
	if r := validate(t, svc, m.Secret); r.Reason != tokens.ReasonRevoked {
		t.Fatalf("an older-pepper token after its revoke: %+v", r)
	}
}

// A stored digest is believed only under the pepper its row names: a row
// whose digest matches the secret under one pepper while naming another is
// not the secret's token.
//
// Mutation: services/tokens/validate.go ValidateFrom drops the check,
// `if e.Negative || !s.matches(e, primary, secret)` → `if e.Negative`
// (or `... && false`).
func TestDigestMustMatchItsPepper(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ring := keyring(t, "p1", "p2")
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: ring, Format: f.fmt, Logger: quiet})
	for _, c := range []struct {
		name   string
		digest func(secret string) []byte
		pepper string
	}{
		// The primary digest, recorded as the older pepper's.
		{"primary digest named as p2", ring.Primary, "p2"},
		// The older pepper's digest, recorded as the primary's.
		{"p2 digest named as primary", func(s string) []byte { return ring.All(s)[1] }, "p1"},
	} {
		secret, err := f.fmt.Generate()
		if err != nil {
			t.Fatal(err)
		}
		tok := store.Token{ID: uuid.NewString(), OrgID: f.owner.OrgID, UserID: f.owner.UserID, Name: c.name,
			Hint: f.fmt.Hint(secret), Digest: c.digest(secret), PepperID: c.pepper, Scopes: []string{},
			CreatedBy: f.owner.UserID, CreatedAt: time.Now()}
		if err := f.store.CreateToken(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		if r := validate(t, svc, secret); r.Valid || r.Reason != tokens.ReasonNotFound {
			t.Fatalf("%s: %+v, want NOT_FOUND", c.name, r)
		}
	}
}

// Expiry takes effect exactly at the instant, on a cached entry: valid one
// nanosecond before, expired at it.
//
// Mutation: services/tokens/service.go StatusAt,
// `!now.Before(t.ExpiresAt)` → `now.After(t.ExpiresAt)`.
func TestExpiryAtTheExactInstant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c, err := cache.New(cache.Config{L1TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var now time.Time
	clock := func() time.Time { return now }
	now = time.Now()
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Now: clock, Logger: quiet})
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := validate(t, svc, m.Secret)
	if !r.Valid {
		t.Fatalf("fresh token: %+v", r)
	}
	at := r.Token.ExpiresAt // as stored (and cached)
	now = at.Add(-time.Nanosecond)
	if r := validate(t, svc, m.Secret); !r.Valid {
		t.Fatalf("1 ns before its expiry: %+v", r)
	}
	now = at
	if r := validate(t, svc, m.Secret); r.Valid || r.Reason != tokens.ReasonExpired {
		t.Fatalf("at its expiry: %+v, want EXPIRED", r)
	}
}

// Redis down: validations are answered by the store and do not fail.
// The real Redis process is killed, not mocked.
//
// Mutation: services/cache/cache.go Get returns the Redis error,
// `if err != nil && ctx.Err() != nil` → `if err != nil`.
func TestRedisDownFallsBackToStore(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	f := newFixture(t)
	r := f.replica(t, rs.URL(), redistest.Prefix())
	m := f.mint(t, r.svc)
	rs.Stop()
	before := r.store.byDigest.Load()
	res, err := r.svc.Validate(context.Background(), m.Secret, nil)
	if err != nil || !res.Valid {
		t.Fatalf("with Redis down: %+v, %v", res, err)
	}
	if r.store.byDigest.Load() != before+1 {
		t.Fatal("the answer did not come from the store")
	}
	// A second replica, whose first ever lookup meets a dead Redis.
	r2 := f.replica(t, rs.URL(), redistest.Prefix())
	if res, err := r2.svc.Validate(context.Background(), m.Secret, nil); err != nil || !res.Valid {
		t.Fatalf("fresh replica with Redis down: %+v, %v", res, err)
	}
}

// A Redis entry is filled only by a load no invalidation or flush overtook:
// after a flush (a resubscription: invalidations may have been lost) the
// load that began before it writes nothing to Redis either.
//
// Mutation: services/cache/cache.go fill ignores the generation for L2,
// `if c.remote != nil && c.gen.Load() == gen` → `if c.remote != nil`.
func TestRedisFillHonoursGeneration(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	f := newFixture(t)
	r := f.replica(t, url, prefix)
	m := f.mint(t, r.svc)
	read, release := make(chan struct{}), make(chan struct{})
	hold := func() {
		close(read)
		<-release
	}
	r.store.afterRead.Store(&hold)
	done := make(chan error, 1)
	go func() {
		_, err := r.svc.Validate(context.Background(), m.Secret, nil)
		done <- err
	}()
	<-read
	r.cache.Flush()
	r.store.afterRead.Store(nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e, err := r.remote.Get(context.Background(), []cache.Key{keyOf(m)})
	if err != nil {
		t.Fatal(err)
	}
	if e != nil {
		t.Fatal("a load overtaken by a flush filled Redis")
	}
}

package tokens_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
	"github.com/keymint/keymint/services/testwait"
	"github.com/keymint/keymint/services/tokens"
)

// countingStore is a real store that counts digest lookups and can hold a
// lookup after it has read the store (afterRead), as a slow replica would.
type countingStore struct {
	tokens.Store
	byDigest  atomic.Int64
	afterRead atomic.Pointer[func()]
	down      atomic.Bool // the store unreachable
	// bulk counts the shared lookups (TokensByDigests) and bulkDigests
	// the digests they carried.
	bulk, bulkDigests atomic.Int64
}

var errStoreDown = errors.New("connection refused")

func (s *countingStore) GetTokenByDigest(ctx context.Context, digests [][]byte) (store.Token, error) {
	s.byDigest.Add(1)
	if s.down.Load() {
		return store.Token{}, errStoreDown
	}
	t, err := s.Store.GetTokenByDigest(ctx, digests)
	if f := s.afterRead.Load(); f != nil {
		(*f)()
	}
	return t, err
}

// TokensByDigests is the shared lookup of concurrent misses.
func (s *countingStore) TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error) {
	s.bulk.Add(1)
	s.bulkDigests.Add(int64(len(digests)))
	if s.down.Load() {
		return nil, errStoreDown
	}
	ts, err := s.Store.TokensByDigests(ctx, digests)
	if f := s.afterRead.Load(); f != nil {
		(*f)()
	}
	return ts, err
}

var quiet = slog.New(slog.DiscardHandler)

// fixture is a store with one user, shared by the replicas a test builds.
type fixture struct {
	store store.Store
	keys  *tokens.Keyring
	fmt   tokens.Format
	owner authn.Principal
}

// newL1 is an in-process cache with the defaults, closed when tb ends.
func newL1(tb testing.TB) *cache.Cache {
	tb.Helper()
	c, err := cache.New(cache.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st)
}

// newFixtureOn is newFixture on st (PostgreSQL, say).
func newFixtureOn(t testing.TB, st store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	org, err := st.EnsureOrg(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{ID: uuid.NewString(), OrgID: org.ID, Email: "a@example.com", PasswordHash: "x"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	keys, err := tokens.ParseKeyring("1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tokens.NewFormat("km")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, keys: keys, fmt: f, owner: authn.Principal{UserID: u.ID, OrgID: org.ID, Method: authn.ByPassword}}
}

// replica is one keymint's token service: its own L1 and revocation log
// follower, perhaps a shared Redis.
type replica struct {
	svc    *tokens.Service
	cache  *cache.Cache
	remote *rediscache.Remote
	store  *countingStore
	// revs follows the store's revocation log; Run is not started, so a
	// test applies the log when it chooses (revs.CatchUp).
	revs *tokens.Revocations
}

func (f *fixture) replica(t *testing.T, redisURL, prefix string) *replica {
	t.Helper()
	r := &replica{store: &countingStore{Store: f.store}}
	cfg := cache.Config{L1TTL: time.Minute}
	if redisURL != "" {
		client, err := rediscache.NewClient(redisURL, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		if r.remote, err = rediscache.New(rediscache.Config{Client: client, Prefix: prefix, Timeout: time.Second}); err != nil {
			t.Fatal(err)
		}
		cfg.Remote = r.remote
	}
	var err error
	if r.cache, err = cache.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cache.Close)
	r.revs = tokens.NewRevocations(tokens.RevocationsConfig{Log: f.store, Cache: r.cache, Invalidate: r.cache.Invalidate, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.revs.RunPublisher(ctx)
	// The first read takes the head: older rows need no applying.
	if err := r.revs.CatchUp(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	r.svc = tokens.New(tokens.Config{Store: r.store, Keyring: f.keys, Format: f.fmt, Cache: r.cache, Revocations: r.revs, Logger: quiet})
	return r
}

func (f *fixture) mint(t testing.TB, svc *tokens.Service) tokens.Minted {
	t.Helper()
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func validate(t *testing.T, svc *tokens.Service, secret string, scopes ...string) tokens.Result {
	t.Helper()
	r, err := svc.Validate(context.Background(), secret, scopes)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return r
}

func keyOf(t tokens.Minted) cache.Key {
	var k cache.Key
	copy(k[:], t.Token.Digest)
	return k
}

// 1,000 concurrent validations of one uncached token make one store query.
func TestConcurrentValidationsOfUncachedTokenQueryOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.replica(t, "", "")
	m := f.mint(t, r.svc)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := r.svc.Validate(context.Background(), m.Secret, nil); err != nil || !res.Valid {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d validations failed", bad.Load())
	}
	if n := r.store.byDigest.Load(); n != 1 {
		t.Fatalf("%d store queries, want 1", n)
	}
	// Unknown but well-formed tokens are remembered too.
	unknown, _ := f.fmt.Generate()
	for range 3 {
		if res := validate(t, r.svc, unknown); res.Reason != tokens.ReasonNotFound {
			t.Fatalf("unknown token: %+v", res)
		}
	}
	if n := r.store.byDigest.Load(); n != 2 {
		t.Fatalf("%d store queries after 3 unknown-token validations, want 2", n)
	}
}

// Cached answers still check scopes and expiry on every call.
func TestCachedEntryChecksScopesAndExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.replica(t, "", "")
	now := time.Now()
	clock := atomic.Pointer[time.Time]{}
	clock.Store(&now)
	svc := tokens.New(tokens.Config{Store: r.store, Keyring: f.keys, Format: f.fmt, Cache: r.cache, Now: func() time.Time { return *clock.Load() }})
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "t", Scopes: []string{"read"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res := validate(t, svc, m.Secret, "read"); !res.Valid {
		t.Fatalf("read: %+v", res)
	}
	if res := validate(t, svc, m.Secret, "write"); res.Valid || res.Reason != tokens.ReasonInsufficientScope {
		t.Fatalf("a cached answer for one scope authorized another: %+v", res)
	}
	later := now.Add(2 * time.Hour)
	clock.Store(&later)
	if res := validate(t, svc, m.Secret, "read"); res.Valid || res.Reason != tokens.ReasonExpired {
		t.Fatalf("expired token answered from cache as %+v", res)
	}
	if n := r.store.byDigest.Load(); n != 1 {
		t.Fatalf("%d store queries, want 1 (the rest from cache)", n)
	}
}

// The store down: cached tokens still answer; unknown ones are refused with
// an error, never allowed.
func TestStoreDownServesCachedRefusesUnknown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.replica(t, "", "")
	m := f.mint(t, r.svc)
	if !validate(t, r.svc, m.Secret).Valid {
		t.Fatal("not valid")
	}
	r.store.down.Store(true)
	if !validate(t, r.svc, m.Secret).Valid {
		t.Fatal("cached token refused while the store is down")
	}
	unknown, _ := f.fmt.Generate()
	res, err := r.svc.Validate(context.Background(), unknown, nil)
	if err == nil || res.Valid {
		t.Fatalf("unknown token with the store down: %+v, %v", res, err)
	}
}

// A lookup on replica B that read the store before replica A revoked, and
// writes its answer after B applied the revocation log row, leaves no stale
// positive entry and gives no positive answer: not in B's L1 (applying
// moved its generation), not in Redis (the tombstone refused the write),
// and B's own answer is corrected by the remembered revocation; so B and a
// third replica C refuse the token.
func TestLookupRacingRevokeLeavesNoStaleEntry(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	f := newFixture(t)
	a, b, c := f.replica(t, url, prefix), f.replica(t, url, prefix), f.replica(t, url, prefix)
	m := f.mint(t, a.svc)

	read, release := make(chan struct{}), make(chan struct{})
	hold := func() {
		close(read)
		<-release
	}
	b.store.afterRead.Store(&hold)
	type answer struct {
		r   tokens.Result
		err error
	}
	bDone := make(chan answer, 1)
	go func() {
		r, err := b.svc.Validate(context.Background(), m.Secret, nil)
		bDone <- answer{r, err}
	}()
	select { // B has read "valid" from the store and holds it
	case <-read:
	case ans := <-bDone: // never wait for a read that will not come (see queueBehindHeldRead)
		t.Fatalf("B answered %+v, %v without reading the store", ans.r, ans.err)
	}

	if _, err := a.svc.Revoke(authn.WithPrincipal(context.Background(), f.owner), m.Token.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.revs.CatchUp(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	b.store.afterRead.Store(nil)
	close(release)
	if ans := <-bDone; ans.err != nil || ans.r.Valid {
		t.Fatalf("B answered %+v, %v after applying the revocation: a positive after a refusal", ans.r, ans.err)
	}

	k := keyOf(m)
	if e := b.cache.Peek(k); e != nil && e.Live(time.Now()) {
		t.Fatal("B's L1 kept the stale positive entry")
	}
	waitSent(t, a.revs) // the tombstone is written after Revoke returned
	if e, err := a.remote.Get(context.Background(), []cache.Key{k}); err != nil || e != nil && e.Live(time.Now()) {
		t.Fatalf("Redis holds a stale positive entry: %+v, %v", e, err)
	}
	if err := c.revs.CatchUp(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*replica{"A": a, "B": b, "C": c} {
		if res := validate(t, r.svc, m.Secret); res.Valid || res.Reason != tokens.ReasonRevoked {
			t.Fatalf("replica %s after the revoke: %+v", name, res)
		}
	}
}

// Even a replica that never hears the invalidation (its subscription down)
// cannot put a stale answer into Redis for the others.
func TestLateFillRefusedByTombstone(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	f := newFixture(t)
	a, b, c := f.replica(t, url, prefix), f.replica(t, url, prefix), f.replica(t, url, prefix)
	m := f.mint(t, a.svc)
	read, release := make(chan struct{}), make(chan struct{})
	hold := func() {
		close(read)
		<-release
	}
	b.store.afterRead.Store(&hold)
	done := make(chan error, 1)
	go func() {
		_, err := b.svc.Validate(context.Background(), m.Secret, nil)
		done <- err
	}()
	select {
	case <-read:
	case err := <-done: // never wait for a read that will not come (see queueBehindHeldRead)
		t.Fatalf("B answered (%v) without reading the store", err)
	}
	if _, err := a.svc.Revoke(authn.WithPrincipal(context.Background(), f.owner), m.Token.ID); err != nil {
		t.Fatal(err)
	}
	// The tombstone is written after Revoke returned: the late fill must
	// come after it, as it would after any revocation that has settled.
	waitSent(t, a.revs)
	b.store.afterRead.Store(nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e, err := a.remote.Get(context.Background(), []cache.Key{keyOf(m)}); err != nil || e != nil && e.Live(time.Now()) {
		t.Fatalf("the late fill reached Redis: %+v, %v", e, err)
	}
	if res := validate(t, c.svc, m.Secret); res.Reason != tokens.ReasonRevoked {
		t.Fatalf("replica C: %+v", res)
	}
}

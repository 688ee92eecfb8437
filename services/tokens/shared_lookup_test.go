package tokens_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/tokens"
)

// waitUntil polls cond until it holds (the failure deadline is generous:
// this waits for an event, it does not time anything).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdNext makes the next store read (single or shared) wait, after it has
// read, until release is called; read is closed once it has read.
func holdNext(s *countingStore) (read chan struct{}, release func()) {
	read, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func() {
		once.Do(func() {
			s.afterRead.Store(nil)
			close(read)
			<-gate
		})
	}
	s.afterRead.Store(&hold)
	return read, func() { close(gate) }
}

// awaitRead waits for the held lookup to read the store, or fails if the
// blocker answers without having read it: a bare <-read hung for good on
// the mutant format.go checksumOK `v < 0` → `v <= 0` (a token refused as
// malformed before any store read), which this makes a failure.
func awaitRead(t *testing.T, read <-chan struct{}, first <-chan validation) {
	t.Helper()
	select {
	case <-read:
	case v := <-first:
		t.Fatalf("the blocker answered %+v, %v without reading the store", v.res, v.err)
	}
}

// stores runs test on the embedded store and, when a throwaway server is
// configured, on PostgreSQL.
func stores(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, newFixture(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		st, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, newFixtureOn(t, st))
	})
}

type validation struct {
	name string
	res  tokens.Result
	err  error
}

// Misses that arrive while a store lookup is in flight wait and share the
// next query, each with its own answer: valid, revoked and unknown tokens
// mixed. Mutation: lookupBatch answering every lookup with the first
// token the query found (out[i] = ts[0]) fails the valid ones (matches).
func TestConcurrentMissesShareOneStoreQuery(t *testing.T) {
	stores(t, func(t *testing.T, f *fixture) {
		r := f.replica(t, "", "")
		ctx := authn.WithPrincipal(context.Background(), f.owner)
		want := map[string]tokens.Reason{}
		secrets := map[string]string{}
		for i := range 8 {
			m := f.mint(t, r.svc)
			name := fmt.Sprintf("valid-%d", i)
			secrets[name], want[name] = m.Secret, tokens.ReasonNone
		}
		for i := range 4 {
			m := f.mint(t, r.svc)
			if _, err := r.svc.Revoke(ctx, m.Token.ID); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("revoked-%d", i)
			secrets[name], want[name] = m.Secret, tokens.ReasonRevoked
		}
		for i := range 4 {
			s, _ := f.fmt.Generate()
			name := fmt.Sprintf("unknown-%d", i)
			secrets[name], want[name] = s, tokens.ReasonNotFound
		}
		blocker := f.mint(t, r.svc)

		read, release := holdNext(r.store)
		first := make(chan validation, 1)
		go func() {
			res, err := r.svc.Validate(context.Background(), blocker.Secret, nil)
			first <- validation{"blocker", res, err}
		}()
		awaitRead(t, read, first)
		out := make(chan validation, len(secrets))
		for name, secret := range secrets {
			go func() {
				res, err := r.svc.Validate(context.Background(), secret, nil)
				out <- validation{name, res, err}
			}()
		}
		waitUntil(t, "every miss to queue behind the lookup in flight", func() bool {
			return tokens.WaitingLookups(r.svc) == len(secrets)
		})
		release()
		if v := <-first; v.err != nil || !v.res.Valid {
			t.Fatalf("blocker: %+v, %v", v.res, v.err)
		}
		for range secrets {
			v := <-out
			if v.err != nil || v.res.Reason != want[v.name] || v.res.Valid != (want[v.name] == tokens.ReasonNone) {
				t.Errorf("%s answered %+v, %v; want reason %v", v.name, v.res, v.err, want[v.name])
			}
		}
		if n, b, d := r.store.byDigest.Load(), r.store.bulk.Load(), r.store.bulkDigests.Load(); n != 1 || b != 1 || d != int64(len(secrets)) {
			t.Fatalf("store queries: %d single, %d shared carrying %d digests; want 1, 1, %d", n, b, d, len(secrets))
		}
	})
}

// A shared query that read tokens before they were revoked, and answers
// after this replica applied the revocations, answers none of them valid;
// and a validation that arrives after a revocation, while that query is
// still in flight, does not share it: it waits for a query of its own.
// Mutation: dropping Cache.correct's check in fill answers the held ones
// valid; loop appending arrivals to the query in flight would share it.
func TestRevocationDuringSharedQueryNeverAnsweredValid(t *testing.T) {
	stores(t, func(t *testing.T, f *fixture) {
		r := f.replica(t, "", "")
		ctx := authn.WithPrincipal(context.Background(), f.owner)
		var minted []tokens.Minted
		for range 5 {
			minted = append(minted, f.mint(t, r.svc))
		}
		blocker := f.mint(t, r.svc)

		read, release := holdNext(r.store)
		first := make(chan validation, 1)
		go func() {
			res, err := r.svc.Validate(context.Background(), blocker.Secret, nil)
			first <- validation{"blocker", res, err}
		}()
		awaitRead(t, read, first)
		out := make(chan validation, len(minted))
		for i, m := range minted {
			go func() {
				res, err := r.svc.Validate(context.Background(), m.Secret, nil)
				out <- validation{fmt.Sprint(i), res, err}
			}()
		}
		waitUntil(t, "the misses to queue", func() bool { return tokens.WaitingLookups(r.svc) == len(minted) })
		// The next query (the shared one) holds after reading them valid.
		sharedRead, releaseShared := holdNext(r.store)
		release()
		<-first
		select {
		case <-sharedRead:
		case v := <-out:
			t.Fatalf("token %s answered %+v, %v without a shared query", v.name, v.res, v.err)
		}
		for _, m := range minted {
			if _, err := r.svc.Revoke(ctx, m.Token.ID); err != nil {
				t.Fatal(err)
			}
		}
		late := make(chan validation, 1)
		go func() {
			res, err := r.svc.Validate(context.Background(), minted[0].Secret, nil)
			late <- validation{"late", res, err}
		}()
		waitUntil(t, "the late validation to queue for a query of its own", func() bool { return tokens.WaitingLookups(r.svc) == 1 })
		releaseShared()
		for range minted {
			if v := <-out; v.err != nil || v.res.Valid || v.res.Reason != tokens.ReasonRevoked {
				t.Errorf("token %s answered %+v, %v after its revocation was applied", v.name, v.res, v.err)
			}
		}
		if v := <-late; v.err != nil || v.res.Valid || v.res.Reason != tokens.ReasonRevoked {
			t.Errorf("a validation after the revocation answered %+v, %v", v.res, v.err)
		}
		for _, m := range minted {
			if res := validate(t, r.svc, m.Secret); res.Valid || res.Reason != tokens.ReasonRevoked {
				t.Errorf("after the revocations: %+v", res)
			}
		}
	})
}

// The store down during a shared query: every lookup in it gets an
// error, none an answer (never valid, never unknown).
func TestSharedQueryStoreDownFailsEveryLookup(t *testing.T) {
	stores(t, func(t *testing.T, f *fixture) {
		r := f.replica(t, "", "")
		var secrets []string
		for range 4 {
			secrets = append(secrets, f.mint(t, r.svc).Secret)
		}
		unknown, _ := f.fmt.Generate()
		secrets = append(secrets, unknown)
		blocker := f.mint(t, r.svc)
		read, release := holdNext(r.store)
		first := make(chan validation, 1)
		go func() {
			res, err := r.svc.Validate(context.Background(), blocker.Secret, nil)
			first <- validation{"blocker", res, err}
		}()
		awaitRead(t, read, first)
		out := make(chan validation, len(secrets))
		for _, s := range secrets {
			go func() {
				res, err := r.svc.Validate(context.Background(), s, nil)
				out <- validation{"", res, err}
			}()
		}
		waitUntil(t, "the misses to queue", func() bool { return tokens.WaitingLookups(r.svc) == len(secrets) })
		r.store.down.Store(true)
		release()
		<-first
		for range secrets {
			if v := <-out; v.err == nil || v.res.Valid {
				t.Errorf("store down: %+v, %v; want an error", v.res, v.err)
			}
		}
	})
}

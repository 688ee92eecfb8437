package tokens_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/testwait"
	"github.com/keymint/keymint/services/tokens"
)

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

// queueBehindHeldRead validates blocker and holds that lookup's store read,
// then validates each of secrets (by name) and waits until every one of them
// queues behind it. release lets the held read answer: first then gets the
// blocker's answer, out one answer per secret.
func queueBehindHeldRead(t *testing.T, r *replica, blocker string, secrets map[string]string) (first, out chan validation, release func()) {
	t.Helper()
	read, release := holdNext(r.store)
	first = make(chan validation, 1)
	go func() {
		res, err := r.svc.Validate(context.Background(), blocker, nil)
		first <- validation{"blocker", res, err}
	}()
	// Not a bare <-read: that hung for good on the mutant format.go
	// checksumOK `v < 0` → `v <= 0` (the blocker refused as malformed
	// before any store read); an answer without a read now fails.
	select {
	case <-read:
	case v := <-first:
		t.Fatalf("the blocker answered %+v, %v without reading the store", v.res, v.err)
	}
	out = make(chan validation, len(secrets))
	for name, secret := range secrets {
		go func() {
			res, err := r.svc.Validate(context.Background(), secret, nil)
			out <- validation{name, res, err}
		}()
	}
	testwait.Until(t, "every miss to queue behind the lookup in flight", func() bool {
		return tokens.WaitingLookups(r.svc) == len(secrets)
	})
	return first, out, release
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
		first, out, release := queueBehindHeldRead(t, r, blocker.Secret, secrets)
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
		secrets := map[string]string{}
		for i := range 5 {
			minted = append(minted, f.mint(t, r.svc))
			secrets[fmt.Sprint(i)] = minted[i].Secret
		}
		blocker := f.mint(t, r.svc)
		first, out, release := queueBehindHeldRead(t, r, blocker.Secret, secrets)
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
		testwait.Until(t, "the late validation to queue for a query of its own", func() bool { return tokens.WaitingLookups(r.svc) == 1 })
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
		secrets := map[string]string{}
		for i := range 4 {
			secrets[fmt.Sprint("valid-", i)] = f.mint(t, r.svc).Secret
		}
		secrets["unknown"], _ = f.fmt.Generate()
		blocker := f.mint(t, r.svc)
		first, out, release := queueBehindHeldRead(t, r, blocker.Secret, secrets)
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

package postgres_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/store/storetest"
)

// replicaDBs makes databases on a primary/standby pair, cloned from a
// template migrated once.
type replicaDBs struct {
	pair     *pgtest.Pair
	once     sync.Once
	template string
	err      error
}

func dbURL(t testing.TB, server, name string) string {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func adminExec(t testing.TB, server, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// open returns a Replicated store on a new database of the pair, and the
// standby's URL of that database.
func (d *replicaDBs) open(t testing.TB, cfg postgres.ReplicaConfig) (*postgres.Replicated, string) {
	t.Helper()
	d.once.Do(func() {
		d.template = "keymint_replica_template"
		adminExec(t, d.pair.PrimaryURL, "CREATE DATABASE "+d.template)
		s, err := postgres.Open(context.Background(), dbURL(t, d.pair.PrimaryURL, d.template))
		if err != nil {
			d.err = err
			return
		}
		s.Close()
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	name := "keymint_" + strings.ToLower(rand.Text()[:12])
	adminExec(t, d.pair.PrimaryURL, "CREATE DATABASE "+name+" TEMPLATE "+d.template)
	primary, err := postgres.Open(t.Context(), dbURL(t, d.pair.PrimaryURL, name))
	if err != nil {
		t.Fatal(err)
	}
	cfg.URL = dbURL(t, d.pair.StandbyURL, name)
	r, err := postgres.OpenReplicated(t.Context(), primary, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, cfg.URL
}

// The conformance suite holds with reads routed to a streaming replica.
func TestReplicatedConformance(t *testing.T) {
	dbs := &replicaDBs{pair: pgtest.StartPair(t)}
	storetest.Run(t, func(t *testing.T) store.Store {
		r, _ := dbs.open(t, postgres.ReplicaConfig{})
		return r
	})
}

// waitFor polls cond until it holds; a generous bound only guards against
// a hang (the machine is loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// standbyQuery runs one query on the standby's copy of the database.
func standbyQuery(t *testing.T, standby, sql string, args ...any) pgx.Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, err := pgx.Connect(ctx, standby)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c.QueryRow(ctx, sql, args...)
}

// A replica that lags (replay paused) or is down never refuses a token
// that exists and never answers a revoked token as active; once it is
// fresh again it answers.
func TestReplicatedConsistency(t *testing.T) {
	dbs := &replicaDBs{pair: pgtest.StartPair(t)}
	r, standby := dbs.open(t, postgres.ReplicaConfig{MaxLag: 2 * time.Second})
	ctx := t.Context()
	org, err := r.EnsureOrg(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CreateUser(ctx, store.User{ID: "u1", OrgID: org.ID, Email: "a@example.com", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	mint := func() store.Token {
		t.Helper()
		n++
		digest := make([]byte, 32)
		_, _ = rand.Read(digest)
		tok := store.Token{ID: "t" + rand.Text()[:10], OrgID: org.ID, UserID: "u1", CreatedBy: "u1", Name: "n", Hint: "km_x",
			Digest: digest, PepperID: "1", Scopes: []string{}}
		if err := r.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	get := func(tok store.Token) store.Token {
		t.Helper()
		got, err := r.GetTokenByDigest(ctx, [][]byte{tok.Digest})
		if err != nil {
			t.Fatalf("token %s that exists: %v", tok.ID, err)
		}
		return got
	}
	active := func() []string {
		t.Helper()
		ts, err := r.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, Active: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range ts {
			ids = append(ids, x.ID)
		}
		return ids
	}
	// bulk is the shared lookup of concurrent validation misses: it must
	// keep GetTokenByDigest's rules.
	bulk := func(toks ...store.Token) map[string]store.Token {
		t.Helper()
		digests := [][]byte{make([]byte, 32)} // a digest no token has
		for _, tok := range toks {
			digests = append(digests, tok.Digest)
		}
		got, err := r.TokensByDigests(ctx, digests)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]store.Token{}
		for _, g := range got {
			out[g.ID] = g
		}
		if len(out) != len(toks) || len(got) != len(toks) {
			t.Fatalf("bulk lookup of %d tokens found %d (%d distinct)", len(toks), len(got), len(out))
		}
		return out
	}
	answeredByReplica := func(tok store.Token) bool {
		before := r.ReplicaReads()
		if got := get(tok); got.ID != tok.ID {
			t.Fatalf("got %s, want %s", got.ID, tok.ID)
		}
		return r.ReplicaReads() > before
	}

	old := mint()
	waitFor(t, "the replica to answer", func() bool { return answeredByReplica(old) })
	before := r.ReplicaReads()
	if got := bulk(old); got[old.ID].ID != old.ID || r.ReplicaReads() == before {
		t.Fatalf("bulk lookup %v not answered by the fresh replica", got)
	}

	t.Run("lagging", func(t *testing.T) {
		adminExec(t, standby, "SELECT pg_wal_replay_pause()")
		waitFor(t, "replay to pause", func() bool {
			var state string
			if err := standbyQuery(t, standby, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
				t.Fatal(err)
			}
			return state == "paused"
		})
		fresh := mint()
		if got := get(fresh); got.ID != fresh.ID {
			t.Fatalf("a token minted a moment ago: got %s", got.ID)
		}
		var onStandby int
		if err := standbyQuery(t, standby, "SELECT count(*) FROM tokens WHERE id = $1", fresh.ID).Scan(&onStandby); err != nil || onStandby != 0 {
			t.Fatalf("the standby has the new token (%d, %v): it does not lag", onStandby, err)
		}
		if _, err := r.RevokeToken(ctx, old.ID, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := get(old); got.RevokedAt.IsZero() {
			t.Error("a revoked token answered as active while the replica lags")
		}
		if got := bulk(old, fresh); got[old.ID].RevokedAt.IsZero() || got[fresh.ID].ID != fresh.ID {
			t.Errorf("bulk lookup while the replica lags: %v; want %s revoked and %s found", got, old.ID, fresh.ID)
		}
		if ids := active(); slices.Contains(ids, old.ID) || !slices.Contains(ids, fresh.ID) {
			t.Errorf("active tokens %v: want %s listed and %s not", ids, fresh.ID, old.ID)
		}
		var revokedOnStandby *time.Time
		if err := standbyQuery(t, standby, "SELECT revoked_at FROM tokens WHERE id = $1", old.ID).Scan(&revokedOnStandby); err != nil || revokedOnStandby != nil {
			t.Fatalf("the standby has the revocation (%v, %v): it does not lag", revokedOnStandby, err)
		}
		adminExec(t, standby, "SELECT pg_wal_replay_resume()")
		waitFor(t, "the replica to answer after catching up", func() bool {
			before := r.ReplicaReads()
			got := get(old)
			if got.RevokedAt.IsZero() {
				t.Fatal("a revoked token answered as active after the replica caught up")
			}
			return r.ReplicaReads() > before
		})
	})

	t.Run("revocations", func(t *testing.T) {
		// With the replica streaming, a read right after a revocation
		// returned never sees the token active, whoever answers.
		for range 20 {
			tok := mint()
			waitFor(t, "the replica to have the token", func() bool { return answeredByReplica(tok) })
			if _, err := r.RevokeToken(ctx, tok.ID, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if got := get(tok); got.RevokedAt.IsZero() {
				t.Fatalf("token %s answered as active right after its revocation", tok.ID)
			}
			if got := bulk(tok); got[tok.ID].RevokedAt.IsZero() {
				t.Fatalf("token %s answered as active by the bulk lookup right after its revocation", tok.ID)
			}
		}
	})

	t.Run("down", func(t *testing.T) {
		// The standby is also the primary's synchronous standby: while it is
		// down every commit would wait for it (PostgreSQL's promise). Here
		// it is a plain asynchronous read replica. A late reload only
		// delays commits until the primary applies it.
		adminExec(t, dbs.pair.PrimaryURL, "ALTER SYSTEM SET synchronous_standby_names = ''")
		adminExec(t, dbs.pair.PrimaryURL, "SELECT pg_reload_conf()")
		dbs.pair.StopStandby()
		before := r.PrimaryReads()
		for range 10 {
			tok := mint()
			if got := get(tok); got.ID != tok.ID {
				t.Fatalf("got %s, want %s", got.ID, tok.ID)
			}
			if !slices.Contains(active(), tok.ID) {
				t.Fatalf("token %s missing from the list with the replica down", tok.ID)
			}
		}
		if r.PrimaryReads() < before+20 {
			t.Errorf("primary answered %d reads with the replica down, want 20", r.PrimaryReads()-before)
		}
		dbs.pair.StartStandby()
		tok := mint()
		waitFor(t, "the replica to answer after its restart", func() bool { return answeredByReplica(tok) })
	})
	t.Logf("%d tokens; reads: replica %d, primary %d", n, r.ReplicaReads(), r.PrimaryReads())
}

package e2e

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
)

// Two keymint replicas over a real primary and streaming standby: A on the
// primary alone, B with --database-read-url on the standby. While the
// standby lags (replay paused) and while it hangs (SIGSTOP, every process
// of it), a token revoked through A is refused by B, which had it cached
// as valid, and never answered valid again; a token minted through A a
// moment ago validates through B, from the primary (the standby does not
// have it: checked).
func TestReadReplicaRevocation(t *testing.T) {
	t.Parallel()
	pair := pgtest.StartPair(t)
	cfg := testConfig(t)
	cfg.DatabaseURL = pair.PrimaryURL
	cfg.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("replica-pepper-0123456789abcdefg"))
	cfg.Cache.L1TTL = 30 * time.Minute // a stale answer would show, not age out
	createUser(t, cfg, replicaEmail, "acme", replicaPassword, false)
	a := startServer(t, cfg)
	cfgB := cfg
	cfgB.DataDir = t.TempDir()
	cfgB.DatabaseReadURL = pair.StandbyURL
	b := startServer(t, cfgB)

	ctx := context.Background()
	valid := func(srv *testServer, secret string) bool {
		t.Helper()
		r, err := srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: secret})
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		return r.GetValid()
	}
	onStandby := func(id string) bool {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(qctx, pair.StandbyURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(qctx)
		var n int
		if err := c.QueryRow(qctx, "SELECT count(*) FROM tokens WHERE id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	// revokedThenFresh: tok, cached valid on B, is revoked through A and
	// refused by B; a token minted now validates through B.
	revokedThenFresh := func(phase string, tok *keymintv1.CreateTokenResponse, standbyAnswers bool) {
		t.Helper()
		revoke(t, a, tok.Token.Id)
		waitFor(t, phase+": B refuses the revoked token", func() bool { return !valid(b, tok.Secret) })
		for i := range 20 {
			if valid(b, tok.Secret) {
				t.Fatalf("%s: B answered a revoked token valid again (try %d)", phase, i)
			}
		}
		fresh := mintFull(t, a)
		if standbyAnswers && onStandby(fresh.Token.Id) {
			t.Fatalf("%s: the standby has the new token: it does not lag", phase)
		}
		if !valid(b, fresh.Secret) {
			t.Fatalf("%s: a token minted a moment ago is refused through the replica", phase)
		}
	}

	lagging, hung := mintFull(t, a), mintFull(t, a)
	waitFor(t, "the standby to have the tokens", func() bool { return onStandby(lagging.Token.Id) && onStandby(hung.Token.Id) })
	for _, tok := range []*keymintv1.CreateTokenResponse{lagging, hung} {
		if !valid(b, tok.Secret) {
			t.Fatal("not valid through B before the revoke")
		}
	}

	adminExecE2E(t, pair.StandbyURL, "SELECT pg_wal_replay_pause()")
	revokedThenFresh("lagging", lagging, true)
	adminExecE2E(t, pair.StandbyURL, "SELECT pg_wal_replay_resume()")

	// The standby is also the primary's synchronous standby: hung, it
	// would stall every commit (PostgreSQL's promise); here it is a plain
	// asynchronous read replica.
	adminExecE2E(t, pair.PrimaryURL, "ALTER SYSTEM SET synchronous_standby_names = ''")
	adminExecE2E(t, pair.PrimaryURL, "SELECT pg_reload_conf()")
	pair.PauseStandby()
	defer pair.ResumeStandby()
	revokedThenFresh("hung", hung, false)
}

func adminExecE2E(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/client"
)

// A revoke made while the Redis node is hung (SIGSTOP: connections are
// accepted, nothing is answered) returns once the store committed it. The
// revocation's Redis calls get five minutes here, so a revoke that waited
// for them would hit its one-minute deadline; instead, when it returns, its
// tombstone and publish are still queued on the revoking replica (the
// mechanism: the worker cannot have given up on a hung node yet). A Go
// validator following the other replica refuses the token, through that
// replica's read of the store's log, while Redis is still stopped; once
// Redis resumes, the queue drains.
func TestRevokeDoesNotWaitForHungRedis(t *testing.T) {
	t.Parallel()
	rds := redistest.Start(t)
	_, rs := replicaSet(t, 2, rds.URL(), func(c *Config) { c.Cache.RevocationTimeout = 5 * time.Minute })
	a, b := rs[0], rs[1]
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: b.grpc, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "validator subscribed", v.Subscribed)
	tok := mintFull(t, a)
	if r, err := v.Validate(context.Background(), tok.Secret); err != nil || !r.Valid {
		t.Fatalf("before: %+v %v", r, err)
	}
	before := a.srv.Revocations().Applied()

	rds.Pause()
	defer rds.Resume()
	ctx, cancel := context.WithTimeout(passwordCtx(), time.Minute)
	defer cancel()
	if _, err := a.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: tok.Token.Id}); err != nil {
		t.Fatalf("revoke with Redis hung: %v", err)
	}
	if n := a.srv.Revocations().Unsent(); n != 1 {
		t.Fatalf("%d revocations wait for Redis after the revoke returned, want 1 (its own)", n)
	}
	if a.srv.Revocations().Applied() <= before {
		t.Fatalf("the revoking replica applied %d, not past %d", a.srv.Revocations().Applied(), before)
	}
	if r, err := a.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: tok.Secret}); err != nil || r.GetValid() {
		t.Fatalf("the revoking replica answered %v %v", r, err)
	}
	waitFor(t, "the validator on the other replica refuses the token", func() bool {
		r, err := v.Validate(context.Background(), tok.Secret)
		return err == nil && !r.Valid
	})
	if n := a.srv.Revocations().Unsent(); n != 1 {
		t.Fatalf("the refusal came with %d unsent, want 1: Redis was not hung for the test", n)
	}
	// An operator sees the stuck publish on /metrics.
	if m := metricsLine(t, a, "keymint_revocation_publish_unsent"); m != "keymint_revocation_publish_unsent 1" {
		t.Fatalf("with Redis hung, /metrics says %q, want the one unsent revocation", m)
	}
	rds.Resume()
	waitFor(t, "the queued publish sent once Redis resumed", func() bool { return a.srv.Revocations().Unsent() == 0 })
	if m := metricsLine(t, a, "keymint_revocation_publish_unsent"); m != "keymint_revocation_publish_unsent 0" {
		t.Fatalf("after Redis resumed, /metrics says %q, want 0", m)
	}
	if m := metricsLine(t, a, "keymint_revocation_publish_dropped_total"); m != "keymint_revocation_publish_dropped_total 0" {
		t.Fatalf("/metrics says %q, want no drop", m)
	}
}

// metricsLine is the sample line of the unlabelled series name on srv's
// /metrics, or "" when it is missing.
func metricsLine(t *testing.T, srv *testServer, name string) string {
	t.Helper()
	code, body := do(t, "GET", srv.http+"/metrics", nil, "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/tokens"
)

// PostgreSQL stopped under a running keymint: cached tokens still validate
// until their cache TTL, unknown tokens are refused (never allowed), minting
// answers 503 with a clear message and a retry hint; PostgreSQL started
// again: full service, without restarting keymint.
func TestPostgresStopped(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	cfg := testConfig(t)
	cfg.DatabaseURL = pg.URL()
	cfg.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	// Long enough to outlast stopping PostgreSQL, short enough to watch it end.
	cfg.Cache.L1TTL = 8 * time.Second
	const email, password = "outage@example.com", "a long test password"
	createUser(t, cfg, email, "acme", password, false)
	srv := startServer(t, cfg)
	creds := map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": password}
	format, err := tokens.NewFormat("km")
	if err != nil {
		t.Fatal(err)
	}
	unknown := func() string {
		s, err := format.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	grpcValidate := func(tok string) (*keymintv1.ValidateTokenResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: tok})
	}

	var cached upsolverToken
	if code, body := do(t, "POST", srv.http+"/api-tokens", creds, `{"displayData":{"name":"cached"}}`, &cached); code != 200 {
		t.Fatalf("mint: %d %s", code, body)
	}
	if v := validate(t, srv, cached.APIToken); v["valid"] != true {
		t.Fatalf("validate before the outage: %v", v)
	}

	pg.Stop()
	stopped := time.Now()

	// The cached token still validates, over gRPC and REST.
	if r, err := grpcValidate(cached.APIToken); err != nil || !r.GetValid() {
		t.Fatalf("cached token with PostgreSQL down: %v, %v (%v after the stop)", r, err, time.Since(stopped))
	}
	if v := validate(t, srv, cached.APIToken); v["valid"] != true {
		t.Fatalf("cached token over REST with PostgreSQL down: %v", v)
	}
	// An unknown token is refused: an error, never valid.
	for range 3 {
		r, err := grpcValidate(unknown())
		if status.Code(err) != codes.Unavailable || r.GetValid() {
			t.Fatalf("unknown token with PostgreSQL down: %v, %v; want Unavailable", r, err)
		}
	}
	var e map[string]any
	code, body := do(t, "POST", srv.http+"/v1/tokens:validate", nil, `{"token":"`+unknown()+`"}`, &e)
	if code != http.StatusServiceUnavailable || e["valid"] == true {
		t.Fatalf("REST validate of an unknown token with PostgreSQL down = %d %s", code, body)
	}
	// Minting answers 503, says why, and when to retry.
	req, _ := http.NewRequest("POST", srv.http+"/api-tokens", nil)
	for k, v := range creds {
		req.Header.Set(k, v)
	}
	resp, out := doReq(t, req, `{"displayData":{"name":"during"}}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!jsonMessageIs(out, "store unavailable, retry shortly") {
		t.Fatalf("mint with PostgreSQL down = %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), out)
	}
	// A revoke answers 503 too: never accepted and then lost. (The token
	// authenticates itself from the cache; the revoke needs the store.)
	rev, _ := http.NewRequest("DELETE", srv.http+"/api-tokens/"+cached.ID, nil)
	rev.Header.Set("authorization", cached.APIToken)
	if resp, out := doReq(t, rev, ""); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("revoke with PostgreSQL down = %d Retry-After %q %s, want 503 with a retry hint", resp.StatusCode, resp.Header.Get("Retry-After"), out)
	}
	if code, _ := do(t, "GET", srv.http+"/readyz", nil, "", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with PostgreSQL down = %d", code)
	}
	// Past its cache TTL the cached token is refused too (Unavailable),
	// never answered from a stale entry.
	waitUntil(t, "the cached token's entry to expire", 30*time.Second, func() bool {
		r, err := grpcValidate(cached.APIToken)
		if err == nil && !r.GetValid() {
			t.Fatalf("cached token answered %v with PostgreSQL down", r)
		}
		return status.Code(err) == codes.Unavailable
	})
	if held := time.Since(stopped); held < cfg.Cache.L1TTL/2 {
		t.Logf("note: the cached token was refused %v after the stop", held)
	}

	pg.Start()
	waitUntil(t, "minting to work again", 60*time.Second, func() bool {
		code, _ := do(t, "POST", srv.http+"/api-tokens", creds, `{"displayData":{"name":"after"}}`, nil)
		return code == http.StatusOK
	})
	if r, err := grpcValidate(cached.APIToken); err != nil || !r.GetValid() {
		t.Fatalf("cached token after the restart: %v, %v", r, err)
	}
	if r, err := grpcValidate(unknown()); err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_NOT_FOUND {
		t.Fatalf("unknown token after the restart: %v, %v; want NOT_FOUND", r, err)
	}
	if code, _ := do(t, "GET", srv.http+"/readyz", nil, "", nil); code != http.StatusOK {
		t.Fatalf("/readyz after the restart = %d", code)
	}
}

// waitUntil polls cond every 50 ms until it holds, failing t after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

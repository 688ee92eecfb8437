package e2e

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/store/sqlite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestClientValidator drives the Go client library against a real keymint:
// the middleware's four cases, a pushed revocation, and keymint going away
// and coming back.
func TestClientValidator(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const email, pw = "lib@example.com", "client library password"
	createUser(t, cfg, email, "lib-org", pw, false)
	srv := startServer(t, cfg)
	// Restarts reuse the ports so the validator's connection finds keymint again.
	cfg.GRPCAddr, cfg.HTTPAddr = srv.grpc, strings.TrimPrefix(srv.http, "http://")

	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	mint := func(name string, scopes ...string) *keymintv1.CreateTokenResponse {
		r, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: name, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	good, noScope, doomed, unseen, revokedOffline := mint("good", "reports:read"), mint("noscope"), mint("doomed", "reports:read"), mint("unseen", "reports:read"), mint("offline", "reports:read")

	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: srv.grpc, TTL: time.Minute, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "validator subscribed", v.Subscribed)

	handler := v.Middleware("reports:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := client.IdentityFrom(r.Context())
		if !ok {
			t.Error("no identity in context")
		}
		w.Header().Set("X-User", id.UserID)
	}))
	call := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/reports", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		return w
	}
	if w := call(""); w.Code != 401 {
		t.Fatalf("no token: %d", w.Code)
	}
	if w := call(good.Secret); w.Code != 200 || w.Header().Get("X-User") != good.Token.UserId {
		t.Fatalf("good token: %d %v", w.Code, w.Header())
	}
	if w := call(noScope.Secret); w.Code != 403 {
		t.Fatalf("missing scope: %d", w.Code)
	}
	if w := call(doomed.Secret); w.Code != 200 {
		t.Fatalf("doomed before revoke: %d", w.Code)
	}
	if w := call(revokedOffline.Secret); w.Code != 200 {
		t.Fatalf("offline-revoked token before revoke: %d", w.Code)
	}

	// A revoke through keymint reaches the cached middleware by the stream:
	// well before the 1-minute TTL (the bound is generous, for a loaded
	// machine, and still proves the push).
	if _, err := srv.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: doomed.Token.Id}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for call(doomed.Secret).Code != 401 {
		if time.Now().After(deadline) {
			t.Fatal("revoked token still allowed after 30s: the stream did not push the revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// keymint down: cached tokens keep working, unknown ones are refused.
	srv.stop()
	waitFor(t, "validator notices the stream broke", func() bool { return !v.Subscribed() })
	if w := call(good.Secret); w.Code != 200 {
		t.Fatalf("cached token while keymint is down: %d", w.Code)
	}
	if w := call(unseen.Secret); w.Code != 503 {
		t.Fatalf("uncached token while keymint is down: %d, want 503 (refused)", w.Code)
	}
	// A revocation the stream cannot deliver: written to the store while
	// keymint is down.
	st, err := sqlite.Open(context.Background(), filepath.Join(cfg.DataDir, "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeToken(context.Background(), revokedOffline.Token.Id, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if w := call(revokedOffline.Secret); w.Code != 200 {
		t.Fatalf("cached answer changed while keymint is down: %d", w.Code)
	}

	// keymint back: the validator resubscribes and clears its cache, so the
	// revocation it never heard of takes effect well before the 1-minute TTL.
	startServer(t, cfg)
	waitFor(t, "validator resubscribed", v.Subscribed)
	if w := call(revokedOffline.Secret); w.Code != 401 {
		t.Fatalf("token revoked while the stream was down still allowed after resubscribe: %d", w.Code)
	}
	if w := call(unseen.Secret); w.Code != 200 {
		t.Fatalf("unseen token after keymint returned: %d", w.Code)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientInterceptor: the library's gRPC interceptor on a real gRPC
// server, validating against a real keymint.
func TestClientInterceptor(t *testing.T) {
	t.Parallel()
	fx := newSidecarFixture(t)
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: fx.srv.grpc})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var seen *client.Identity
	gs := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(client.MethodScopes{
		healthpb.Health_Check_FullMethodName: {"reports:read"},
	})))
	hs := &identityHealth{seen: &seen}
	healthpb.RegisterHealthServer(gs, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	call := func(token string) codes.Code {
		ctx := context.Background()
		if token != "" {
			ctx = client.WithToken(ctx, token)
		}
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return status.Code(err)
	}
	for _, c := range []struct {
		name, token string
		want        codes.Code
	}{
		{"none", "", codes.Unauthenticated},
		{"good", fx.good, codes.OK},
		{"revoked", fx.revoked, codes.Unauthenticated},
		{"no scope", fx.noScope, codes.PermissionDenied},
	} {
		if got := call(c.token); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if seen == nil || seen.UserID != fx.userID {
		t.Fatalf("handler saw identity %+v", seen)
	}
}

type identityHealth struct {
	healthpb.UnimplementedHealthServer
	seen **client.Identity
}

func (h *identityHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	*h.seen, _ = client.IdentityFrom(ctx)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestWatchRevocationsAcrossReplicas: a Go client validator following
// replica B's revocation stream drops a token revoked through replica A
// within a second (the replicas share PostgreSQL and Redis).
func TestWatchRevocationsAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	base := testConfig(t)
	base.DatabaseURL = pgtest.NewDatabase(t)
	base.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	base.Cache.RedisURL = rs.URL()
	const email, password = "watch@example.com", "a long test password"
	createUser(t, base, email, "acme", password, false)
	cfgA, cfgB := base, base
	cfgA.DataDir, cfgB.DataDir = t.TempDir(), t.TempDir()
	a, b := startServer(t, cfgA), startServer(t, cfgB)

	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: b.grpc, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "validator subscribed to B", v.Subscribed)
	secret := mintToken(t, a, email, password)
	res, err := v.Validate(context.Background(), secret)
	if err != nil || !res.Valid {
		t.Fatalf("before the revoke: %+v %v", res, err)
	}
	creds := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	if _, err := a.client.RevokeToken(creds, &keymintv1.RevokeTokenRequest{Id: res.Identity.TokenID}); err != nil {
		t.Fatal(err)
	}
	// 30 s: generous for a loaded machine, and well inside the validator's
	// one-minute TTL, so only the pushed revocation can end its answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := v.Validate(context.Background(), secret)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the validator on B still allows a token revoked through A after 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A pushed revocation moves the validator's stream on: it stays live
// across the heartbeats that follow (each carries the head, which it has
// applied), with no resubscribe. Mutation it fails on
// (services/client/watch.go): `ev.GetSeq() > 0` negated, so the last
// sequence stays behind the revocation, the next heartbeat shows a gap and
// the validator resubscribes after every heartbeat (answers stay right;
// the stream churns and every call meanwhile asks keymint).
func TestValidatorStaysSubscribedAcrossRevocations(t *testing.T) {
	t.Parallel()
	_, rs := replicaSet(t, 1, "")
	srv := rs[0]
	var logs syncBuffer
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: srv.grpc, TTL: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "validator subscribed", v.Subscribed)
	// Only what follows counts: a first attempt may have failed.
	logged := len(logs.String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, _ := watchStream(t, ctx, srv, nil)
	for i := range 3 {
		tok := mintFull(t, srv)
		if r, err := v.Validate(context.Background(), tok.Secret); err != nil || !r.Valid {
			t.Fatalf("round %d, before: %+v %v", i, r, err)
		}
		revoke(t, srv, tok.Token.Id)
		ev := nextRevocation(t, s)
		waitFor(t, "the validator refuses the revoked token", func() bool {
			r, err := v.Validate(context.Background(), tok.Secret)
			return err == nil && !r.Valid
		})
		// Two heartbeats at the revocation's head on this test's own stream:
		// the validator's stream, on the same replica, has had its own.
		for seen := 0; seen < 2; {
			hb, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if hb.GetHeartbeat() && hb.GetSeq() >= ev.GetSeq() {
				seen++
			}
		}
	}
	if after := logs.String()[logged:]; strings.Contains(after, "resubscribing") || !v.Subscribed() {
		t.Fatalf("the validator's stream broke after a revocation (subscribed %v):\n%s", v.Subscribed(), after)
	}
}

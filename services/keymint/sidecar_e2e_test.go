package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// sidecarFixture is a keymint server with route rule GET /reports →
// reports:read, and four tokens: good (has the scope), noscope, revoked,
// plus the empty "no token" case.
type sidecarFixture struct {
	srv                       *testServer
	userID                    string
	good, noScope, revoked    string
	goodID, noScopeID, userEm string
}

func newSidecarFixture(t *testing.T) *sidecarFixture {
	t.Helper()
	cfg := testConfig(t)
	cfg.Routes = []string{"GET /reports=reports:read"}
	const email, pw = "svc@example.com", "sidecar test password"
	createUser(t, cfg, email, "sidecar-org", pw, false)
	srv := startServer(t, cfg)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	mint := func(name string, scopes ...string) *keymintv1.CreateTokenResponse {
		r, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: name, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	good, noScope, revoked := mint("good", "reports:read"), mint("noscope"), mint("revoked", "reports:read")
	if _, err := srv.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	return &sidecarFixture{srv: srv, userID: good.Token.UserId, good: good.Secret, noScope: noScope.Secret, revoked: revoked.Secret,
		goodID: good.Token.Id, noScopeID: noScope.Token.Id, userEm: email}
}

// TestExtAuthzCentral drives Envoy's Authorization/Check on keymint's gRPC
// port with Envoy's own types, for the four cases.
func TestExtAuthzCentral(t *testing.T) {
	t.Parallel()
	fx := newSidecarFixture(t)
	conn, err := grpc.NewClient(fx.srv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	checkExtAuthz(t, authv3.NewAuthorizationClient(conn), fx)
	// Without --strip-authorization the upstream gets the header.
	if removesAuthorization(t, authv3.NewAuthorizationClient(conn), fx.good) {
		t.Fatal("ext_authz removes authorization without --strip-authorization")
	}
	// Check runs its interceptor chain composed once (checkHandler): the
	// metrics interceptor still counts every call, by its answer's code.
	code, metrics := do(t, "GET", fx.srv.http+"/metrics", nil, "", nil)
	want := `keymint_rpc_requests_total{code="OK",method="` + authv3.Authorization_Check_FullMethodName + `"} 5`
	if code != http.StatusOK || !strings.Contains(metrics, want) {
		t.Fatalf("/metrics (%d) lacks %s", code, want)
	}
}

// checkExtAuthz runs the four ext_authz cases against any Authorization server.
func checkExtAuthz(t *testing.T, client authv3.AuthorizationClient, fx *sidecarFixture) {
	t.Helper()
	check := func(token, path string) *authv3.CheckResponse {
		h := map[string]string{"x-keymint-user-id": "spoofed"}
		if token != "" {
			h["authorization"] = "Bearer " + token
		}
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: h}},
		}})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	ok := check(fx.good, "/reports?x=1")
	if codes.Code(ok.GetStatus().GetCode()) != codes.OK || ok.GetOkResponse() == nil {
		t.Fatalf("good token: %v", ok)
	}
	ids := map[string]string{}
	for _, h := range ok.GetOkResponse().GetHeaders() {
		ids[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if ids["x-keymint-user-id"] != fx.userID || ids["x-keymint-token-id"] != fx.goodID {
		t.Fatalf("ok_response headers %v", ids)
	}
	for _, c := range []struct {
		name, token string
		status      int32
	}{{"none", "", 401}, {"revoked", fx.revoked, 401}, {"no scope", fx.noScope, 403}} {
		r := check(c.token, "/reports")
		d := r.GetDeniedResponse()
		if d == nil || int32(d.GetStatus().GetCode()) != c.status {
			t.Fatalf("%s: %v, want denied %d", c.name, r, c.status)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body["error"] == "" {
			t.Fatalf("%s: deny body %q", c.name, d.GetBody())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}

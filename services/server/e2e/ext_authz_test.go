package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server/servertest"
	"google.golang.org/grpc"
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
	if servertest.RemovesAuthorization(t, authv3.NewAuthorizationClient(conn), fx.good) {
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

// checkExtAuthz runs the four ext_authz cases with fx's tokens.
func checkExtAuthz(t *testing.T, client authv3.AuthorizationClient, fx *sidecarFixture) {
	t.Helper()
	servertest.CheckExtAuthz(t, client, servertest.ExtAuthzTokens{UserID: fx.userID, Good: fx.good, GoodID: fx.goodID,
		NoScope: fx.noScope, Revoked: fx.revoked})
}

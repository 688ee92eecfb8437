package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server/servertest"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tlsfiles/tlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// TestSidecar runs `keymint sidecar` against a central keymint that requires
// mTLS on its gRPC port: ext_authz and forward-auth give the four answers,
// and with the central server stopped cached tokens still pass while unknown
// ones are refused.
func TestSidecar(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "keymint-test-ca")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	srvCert, srvKey := ca.Issue(t, dir, "keymint.test", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, dir, "sidecar.test", x509.ExtKeyUsageClientAuth)

	cfg := testConfig(t)
	cfg.Routes = []string{"GET /reports=reports:read"}
	cfg.TLSClientCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = caFile, srvCert, srvKey
	const email, pw = "side@example.com", "sidecar cmd password"
	createUser(t, cfg, email, "side-org", pw, false)
	central := startServer(t, cfg)

	// The test's own client needs mTLS too: plaintext must be refused.
	if _, err := central.Client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: "km_x"}); err == nil {
		t.Fatal("central gRPC port answered a plaintext client")
	}
	clientTLS, err := tlsfiles.Client(tlsfiles.Files{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey}, "keymint.test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(central.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := keymintv1.NewTokenServiceClient(conn)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	mint := func(name string, scopes ...string) *keymintv1.CreateTokenResponse {
		r, err := api.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: name, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	good, noScope, revoked, unseen := mint("good", "reports:read"), mint("noscope"), mint("revoked", "reports:read"), mint("unseen")
	if _, err := api.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}

	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	sctx, stop := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- realMain(sctx, []string{"sidecar",
			"--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
			"--central-addr", central.GRPCAddr, "--central-server-name", "keymint.test",
			"--central-ca-file", caFile, "--central-cert-file", cliCert, "--central-key-file", cliKey,
			"--route", "GET /reports=reports:read", "--strip-authorization",
		}, nil, logs, logs)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v\n%s", err, logs.String())
		}
	})
	base := "http://" + httpAddr
	waitReady(t, base)

	sconn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close()
	servertest.CheckExtAuthz(t, authv3.NewAuthorizationClient(sconn), servertest.ExtAuthzTokens{UserID: good.Token.UserId,
		Good: good.Secret, GoodID: good.Token.Id, NoScope: noScope.Secret, Revoked: revoked.Secret})
	// --strip-authorization: the allowed request reaches the upstream
	// without the token. Mutation: services/server/routes.go
	// `StripAuthorization: c.StripAuth` → `StripAuthorization: false`.
	if !servertest.RemovesAuthorization(t, authv3.NewAuthorizationClient(sconn), good.Secret) {
		t.Fatal("ext_authz under --strip-authorization lets authorization through to the upstream")
	}

	forward := func(token string) int {
		req, _ := http.NewRequest("GET", base+"/v1/forward-auth", nil)
		req.Header.Set("X-Forwarded-Uri", "/reports")
		req.Header.Set("X-Forwarded-Method", "GET")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{{"none", "", 401}, {"good", good.Secret, 200}, {"revoked", revoked.Secret, 401}, {"no scope", noScope.Secret, 403}} {
		if got := forward(c.token); got != c.want {
			t.Fatalf("forward-auth %s: %d, want %d", c.name, got, c.want)
		}
	}

	// Central keymint stopped: cached answers hold, unknown tokens are refused.
	central.Stop()
	if got := forward(good.Secret); got != 200 {
		t.Fatalf("cached token with central down: %d", got)
	}
	if got := forward(unseen.Secret); got == 200 {
		t.Fatal("unknown token allowed with central down")
	}
	resp, err := authv3.NewAuthorizationClient(sconn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
			Headers: map[string]string{"authorization": "Bearer " + unseen.Secret}}},
	}})
	if err != nil || resp.GetOkResponse() != nil {
		t.Fatalf("ext_authz allowed an unknown token with central down: %v %v", resp, err)
	}
	for _, s := range []string{good.Secret, noScope.Secret, unseen.Secret, pw} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("sidecar log holds a secret")
		}
	}
}

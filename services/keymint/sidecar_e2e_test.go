package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// TestNginxAuthRequest runs real nginx with auth_request pointed at
// keymint's forward-auth endpoint, in front of a tiny upstream.
func TestNginxAuthRequest(t *testing.T) {
	t.Parallel()
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		nginxBin = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(nginxBin); err != nil {
		if os.Getenv("KEYMINT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("nginx is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("nginx is not installed; run make test")
	}
	fx := newSidecarFixture(t)

	var mu sync.Mutex
	var seen http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		fmt.Fprint(w, "upstream ok")
	}))
	t.Cleanup(upstream.Close)

	dir := t.TempDir()
	port := freePort(t)
	keymintHost := strings.TrimPrefix(fx.srv.http, "http://")
	conf := fmt.Sprintf(`
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      auth_request /_keymint;
      auth_request_set $km_token $upstream_http_x_keymint_token_id;
      auth_request_set $km_user $upstream_http_x_keymint_user_id;
      auth_request_set $km_org $upstream_http_x_keymint_org_id;
      auth_request_set $km_scopes $upstream_http_x_keymint_scopes;
      proxy_set_header X-Keymint-Token-Id $km_token;
      proxy_set_header X-Keymint-User-Id $km_user;
      proxy_set_header X-Keymint-Org-Id $km_org;
      proxy_set_header X-Keymint-Scopes $km_scopes;
      proxy_pass %[3]s;
    }
    location = /_keymint {
      internal;
      proxy_pass http://%[4]s/v1/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }
  }
}
`, dir, port, upstream.URL, keymintHost)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))

	get := func(path, auth string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		req.Header.Set("X-Keymint-User-Id", "spoofed-user")
		req.Header.Set("X-Keymint-Scopes", "admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/reports", ""); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code := get("/reports/2026", fx.good); code != 200 {
		t.Fatalf("good token: %d, want 200", code)
	}
	mu.Lock()
	if seen.Get("X-Keymint-User-Id") != fx.userID || seen.Get("X-Keymint-Token-Id") != fx.goodID || seen.Get("X-Keymint-Scopes") != "reports:read" {
		t.Fatalf("upstream saw identity %v", seen)
	}
	if strings.Contains(strings.Join(seen.Values("X-Keymint-User-Id"), ","), "spoofed") {
		t.Fatal("upstream saw the spoofed identity")
	}
	mu.Unlock()
	if code := get("/reports", fx.revoked); code != 401 {
		t.Fatalf("revoked token: %d, want 401", code)
	}
	if code := get("/reports", fx.noScope); code != 403 {
		t.Fatalf("token without the route's scope: %d, want 403", code)
	}
	if code := get("/other", fx.noScope); code != 200 {
		t.Fatalf("token without scope on an open route: %d, want 200", code)
	}
	mu.Lock()
	if seen.Get("X-Keymint-Scopes") != "" || seen.Get("X-Keymint-User-Id") != fx.userID {
		t.Fatalf("a scope-less token let the client's scopes header through: %v", seen)
	}
	mu.Unlock()
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
	deadline := time.Now().Add(10 * time.Second)
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

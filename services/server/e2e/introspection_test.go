package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/server/servertest"
)

// introspectFixture is a keymint server with a caller token (scope
// keymint:introspect), a rich token to introspect, a revoked one, one
// without the caller scope and a 2-use token.
type introspectFixture struct {
	srv                              *testServer
	caller, noCallerScope            string
	target, revoked, limited         *keymintv1.CreateTokenResponse
	expiring                         *keymintv1.CreateTokenResponse
	issuer, email, password, orgName string
}

const testIssuer = "https://keymint.example.test"

func newIntrospectFixture(t *testing.T, mutate ...func(*Config)) *introspectFixture {
	t.Helper()
	cfg := testConfig(t)
	cfg.Integrations.Issuer = testIssuer
	for _, m := range mutate {
		m(&cfg)
	}
	f := &introspectFixture{email: "gw@example.com", password: "introspection password", orgName: "intro-org", issuer: testIssuer}
	createUser(t, cfg, f.email, f.orgName, f.password, false)
	f.srv = startServer(t, cfg)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", f.email, "x-api-password", f.password))
	mint := func(req *keymintv1.CreateTokenRequest) *keymintv1.CreateTokenResponse {
		r, err := f.srv.client.CreateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	f.caller = mint(&keymintv1.CreateTokenRequest{Name: "gateway", Scopes: []string{introspect.CallerScope}}).Secret
	f.noCallerScope = mint(&keymintv1.CreateTokenRequest{Name: "plain", Scopes: []string{"reports:read"}}).Secret
	md, _ := structpb.NewStruct(map[string]any{"plan": "gold", "seats": 3})
	f.target = mint(&keymintv1.CreateTokenRequest{Name: "target", Scopes: []string{"reports:read", "reports:write"},
		ExternalId: "customer-42", Metadata: md, Ttl: durationpb.New(24 * time.Hour)})
	f.revoked = mint(&keymintv1.CreateTokenRequest{Name: "revoked"})
	if _, err := f.srv.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: f.revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	f.limited = mint(&keymintv1.CreateTokenRequest{Name: "limited", RemainingUses: proto.Int64(2)})
	f.expiring = mint(&keymintv1.CreateTokenRequest{Name: "expiring", Ttl: durationpb.New(time.Second)})
	return f
}

// introspectCall posts form to base's introspection endpoint with the
// given Authorization value and returns the status, headers and body.
func introspectCall(t *testing.T, base, authorization string, form url.Values) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+introspect.Path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// checkIntrospection runs the endpoint's contract against base (a
// central server or a sidecar).
func checkIntrospection(t *testing.T, f *introspectFixture, base string) {
	t.Helper()
	bearer := "Bearer " + f.caller
	tok := func(s string) url.Values { return url.Values{"token": {s}} }

	// Caller authentication (§2.1).
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"no credentials", "", 401},
		{"unknown token", "Bearer km_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000", 401},
		{"garbage basic", "Basic !!!", 401},
		{"revoked caller", "Bearer " + f.revoked.Secret, 401},
		{"caller without keymint:introspect", "Bearer " + f.noCallerScope, 403},
	} {
		st, h, body := introspectCall(t, base, c.auth, tok(f.target.Secret))
		if st != c.want {
			t.Fatalf("%s: %d %s, want %d", c.name, st, body, c.want)
		}
		if st == 401 && !strings.Contains(h.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("%s: 401 without a Basic challenge: %q", c.name, h.Get("WWW-Authenticate"))
		}
		if strings.Contains(body, f.target.Secret) || strings.Contains(body, "active") {
			t.Fatalf("%s: body %s says something about the token", c.name, body)
		}
	}

	// Inactive: exactly {"active":false}, whatever the reason.
	for name, s := range map[string]string{
		"revoked":   f.revoked.Secret,
		"malformed": "km_nope",
		"unknown":   "km_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000",
		"empty-ish": " ",
	} {
		st, h, body := introspectCall(t, base, bearer, tok(s))
		if st != 200 || strings.TrimSpace(body) != `{"active":false}` {
			t.Fatalf("%s: %d %q, want 200 {\"active\":false}", name, st, body)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: headers %v", name, h)
		}
	}

	// Expired: inactive once keymint says so (waited for, not timed).
	eventually(t, "the 1 s token expired", func() bool {
		v, err := f.srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: f.expiring.Secret})
		return err == nil && v.GetReason() == keymintv1.ValidateTokenResponse_EXPIRED
	})
	if _, _, body := introspectCall(t, base, bearer, tok(f.expiring.Secret)); strings.TrimSpace(body) != `{"active":false}` {
		t.Fatalf("expired: %s", body)
	}

	// Active, with the members RFC 7662 defines and keymint's own.
	st, h, body := introspectCall(t, base, bearer, url.Values{"token": {f.target.Secret}, "token_type_hint": {"access_token"}})
	if st != 200 || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("active: %d %v %s", st, h, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	created := f.target.Token.CreateTime.AsTime().Unix()
	want := map[string]any{
		"active": true, "scope": "reports:read reports:write", "client_id": f.target.Token.Id,
		"username": f.target.Token.UserId, "token_type": "Bearer", "iat": float64(created),
		"exp": float64(f.target.Token.ExpireTime.AsTime().Unix()),
		"sub": f.target.Token.UserId, "iss": f.issuer, "jti": f.target.Token.Id,
		"keymint_org_id": f.target.Token.OrganizationId, "keymint_principal_kind": "user", "keymint_external_id": "customer-42",
		"keymint_metadata": map[string]any{"plan": "gold", "seats": float64(3)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("active answer\n got %v\nwant %v", got, want)
	}

	// scope is checked like requiredScopes.
	if _, _, body := introspectCall(t, base, bearer, url.Values{"token": {f.target.Secret}, "scope": {"reports:read reports:admin"}}); strings.TrimSpace(body) != `{"active":false}` {
		t.Fatalf("missing scope: %s", body)
	}
	if _, _, body := introspectCall(t, base, bearer, url.Values{"token": {f.target.Secret}, "scope": {"reports:write"}}); !strings.Contains(body, `"active":true`) {
		t.Fatalf("held scope: %s", body)
	}

	// Bad requests.
	if st, _, _ := introspectCall(t, base, bearer, url.Values{}); st != 400 {
		t.Fatalf("no token: %d", st)
	}
	big := url.Values{"token": {strings.Repeat("a", introspect.MaxBodyBytes)}}
	if st, _, _ := introspectCall(t, base, bearer, big); st != 413 {
		t.Fatalf("oversized body: %d", st)
	}
	req, _ := http.NewRequest(http.MethodPost, base+introspect.Path, strings.NewReader(`{"token":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d", resp.StatusCode)
	}
	if resp, err := http.Get(base + introspect.Path); err != nil || resp.StatusCode != 405 {
		t.Fatalf("GET: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestIntrospection: RFC 7662 on keymint's HTTP port, through plain HTTP,
// a third-party client (zitadel/oidc's resource-server client), curl and
// RFC 8414 discovery.
func TestIntrospection(t *testing.T) {
	t.Parallel()
	f := newIntrospectFixture(t)
	checkIntrospection(t, f, f.srv.http)

	// RFC 8414 metadata names the endpoint; the third-party client uses it.
	resp, err := http.Get(f.srv.http + introspect.MetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Issuer                string   `json:"issuer"`
		IntrospectionEndpoint string   `json:"introspection_endpoint"`
		AuthMethods           []string `json:"introspection_endpoint_auth_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if md.Issuer != testIssuer || md.IntrospectionEndpoint != testIssuer+introspect.Path ||
		fmt.Sprint(md.AuthMethods) != "[client_secret_basic]" {
		t.Fatalf("metadata: %+v", md)
	}
	// The issuer is a public name; the test reaches the same path here.
	endpoint := f.srv.http + strings.TrimPrefix(md.IntrospectionEndpoint, testIssuer)

	ctx := context.Background()
	server, err := rs.NewResourceServerClientCredentials(ctx, testIssuer, "my-gateway", f.caller,
		rs.WithStaticEndpoints(f.srv.http+"/no-token-endpoint", endpoint))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, f.target.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Active || got.Subject != f.target.Token.UserId || fmt.Sprint([]string(got.Scope)) != "[reports:read reports:write]" ||
		got.ClientID != f.target.Token.Id || got.Issuer != testIssuer || got.TokenType != "Bearer" ||
		got.IssuedAt.AsTime().Unix() != f.target.Token.CreateTime.AsTime().Unix() || got.Expiration.AsTime().Unix() != f.target.Token.ExpireTime.AsTime().Unix() ||
		got.Claims["keymint_org_id"] != f.target.Token.OrganizationId || got.Claims["keymint_external_id"] != "customer-42" {
		t.Fatalf("zitadel client read %+v (claims %v)", got, got.Claims)
	}
	got, err = rs.Introspect[*oidc.IntrospectionResponse](ctx, server, f.revoked.Secret)
	if err != nil || got.Active {
		t.Fatalf("revoked via zitadel: %+v %v", got, err)
	}
	wrong, _ := rs.NewResourceServerClientCredentials(ctx, testIssuer, "my-gateway", f.noCallerScope,
		rs.WithStaticEndpoints(f.srv.http+"/no-token-endpoint", endpoint))
	if _, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, wrong, f.target.Secret); err == nil {
		t.Fatal("zitadel client with a caller lacking keymint:introspect got an answer")
	}

	// A usage-limited token counts one use per introspection, shared with
	// ValidateToken: 2 uses are one introspection and one validation.
	if _, _, body := introspectCall(t, f.srv.http, "Bearer "+f.caller, url.Values{"token": {f.limited.Secret}}); !strings.Contains(body, `"keymint_remaining_uses":1`) {
		t.Fatalf("limited, first use: %s", body)
	}
	v, err := f.srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: f.limited.Secret})
	if err != nil || !v.GetValid() || v.GetRemainingUses() != 0 {
		t.Fatalf("limited, second use via ValidateToken: %v %v", v, err)
	}
	if _, _, body := introspectCall(t, f.srv.http, "Bearer "+f.caller, url.Values{"token": {f.limited.Secret}}); strings.TrimSpace(body) != `{"active":false}` {
		t.Fatalf("limited, third use: %s", body)
	}

	// curl, as an operator would type it (client_secret_basic).
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed (scripts/install-deps.sh installs it)")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, curl, "-sS", "-u", "my-gateway:"+f.caller,
		"-d", "token="+f.target.Secret, "-w", "\n%{http_code}", f.srv.http+introspect.Path).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if !strings.Contains(string(out), `"active":true`) || !strings.HasSuffix(string(out), "\n200") ||
		!strings.Contains(string(out), `"sub":"`+f.target.Token.UserId+`"`) {
		t.Fatalf("curl answer: %s", out)
	}
	out, _ = exec.CommandContext(cctx, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
		"-d", "token="+f.target.Secret, f.srv.http+introspect.Path).Output()
	if string(out) != "401" {
		t.Fatalf("curl without credentials: %s", out)
	}
	// Without --forward-auth-identity-body, forward-auth allows with an
	// empty body, as before.
	freq, _ := http.NewRequest(http.MethodGet, f.srv.http+"/v1/forward-auth", nil)
	freq.Header.Set("Authorization", "Bearer "+f.target.Secret)
	freq.Header.Set("X-Original-URI", "/")
	freq.Header.Set("X-Original-Method", "GET")
	fresp, err := http.DefaultClient.Do(freq)
	if err != nil {
		t.Fatal(err)
	}
	fbody, _ := io.ReadAll(fresp.Body)
	fresp.Body.Close()
	if fresp.StatusCode != 200 || len(fbody) != 0 {
		t.Fatalf("forward-auth without the identity body setting: %d %q", fresp.StatusCode, fbody)
	}
	for _, s := range []string{f.caller, f.target.Secret, f.limited.Secret} {
		if strings.Contains(f.srv.logs.String(), s) {
			t.Fatal("the server log holds a token")
		}
	}
}

// TestIntrospectionSidecar: the same contract on `keymint sidecar`'s HTTP
// port (answers from its cache; limited tokens reach the central server on
// every use), and forward-auth's JSON identity body behind its flag.
func TestIntrospectionSidecar(t *testing.T) {
	t.Parallel()
	f := newIntrospectFixture(t)
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	logs := background(t, "sidecar", func(ctx context.Context, w io.Writer) error {
		return runSidecar(ctx, []string{"--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
			"--central-addr", f.srv.grpc, "--issuer", testIssuer, "--forward-auth-identity-body"}, w)
	})
	base := "http://" + httpAddr
	waitReady(t, base)
	checkIntrospection(t, f, base)

	// Two uses in all, whichever way they come: the sidecar never answers a
	// limited token from its cache.
	bearer := "Bearer " + f.caller
	for i, want := range []string{`"keymint_remaining_uses":1`, `"keymint_remaining_uses":0`, `{"active":false}`} {
		if _, _, body := introspectCall(t, base, bearer, url.Values{"token": {f.limited.Secret}}); !strings.Contains(body, want) {
			t.Fatalf("limited token, use %d via the sidecar: %s, want %s", i+1, body, want)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/v1/forward-auth", nil)
	req.Header.Set("Authorization", "Bearer "+f.target.Secret)
	req.Header.Set("X-Original-URI", "/")
	req.Header.Set("X-Original-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var id map[string]any
	err = json.NewDecoder(resp.Body).Decode(&id)
	resp.Body.Close()
	want := map[string]any{"sub": f.target.Token.UserId, "scope": "reports:read reports:write",
		"exp": float64(f.target.Token.ExpireTime.AsTime().Unix()), "org": f.target.Token.OrganizationId, "kind": "user"}
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || fmt.Sprint(id) != fmt.Sprint(want) {
		t.Fatalf("forward-auth identity body: %d %v %v, want %v", resp.StatusCode, id, err, want)
	}
	for _, s := range []string{f.caller, f.target.Secret, f.limited.Secret} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("the sidecar log holds a token")
		}
	}
}

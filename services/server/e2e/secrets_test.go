package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
)

// secretSet collects every secret a test sees: minted tokens, passwords,
// session cookies.
type secretSet struct{ list []string }

func (s *secretSet) add(v ...string) {
	for _, x := range v {
		if x != "" {
			s.list = append(s.list, x)
		}
	}
}

// leaks returns the secrets text holds: whole, or any 16-character piece of
// one past its first 9 characters (a token's display hint is its prefix and
// 6 characters, which logs may show).
func (s *secretSet) leaks(text string) []string {
	var out []string
	for _, sec := range s.list {
		if strings.Contains(text, sec) {
			out = append(out, sec)
			continue
		}
		for i := 9; i+16 <= len(sec); i++ {
			if strings.Contains(text, sec[i:i+16]) {
				out = append(out, sec+" (a piece of it)")
				break
			}
		}
	}
	return out
}

// Every secret of a busy run (tokens minted on every route, passwords right
// and wrong, session secrets) is absent from the server's logs, at debug
// level, with Redis on.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	cfg := testConfig(t)
	cfg.Cache.RedisURL = rs.URL()
	var secrets secretSet
	const email, admin = "busy@example.com", "busyadmin@example.com"
	pw, adminPW, newPW := "busy user's password", "busy admin's password", "busy user's new password"
	secrets.add(pw, adminPW, newPW)
	createUser(t, cfg, email, "busyorg", pw, false)
	createUser(t, cfg, admin, "busyorg", adminPW, true)
	srv := startServer(t, cfg)
	creds := map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": pw}

	// Mint on every route.
	var up upsolverToken
	if code, body := do(t, "POST", srv.http+"/api-tokens/", creds, upsolverBody, &up); code != 200 {
		t.Fatalf("upsolver mint: %d %s", code, body)
	}
	var native struct {
		Secret string `json:"secret"`
		Token  struct {
			ID string `json:"id"`
		} `json:"token"`
	}
	if code, body := do(t, "POST", srv.http+"/v1/tokens", creds, `{"name":"native","scopes":["read"]}`, &native); code != 200 {
		t.Fatalf("native mint: %d %s", code, body)
	}
	b := newBrowser(t, srv.http)
	b.login(email, pw)
	secrets.add(b.session())
	sem := b.mint(`{"name":"semaphore"}`)
	grpcSecret := mintToken(t, srv, email, pw, "read", "write")
	secrets.add(up.APIToken, native.Secret, sem.ID, grpcSecret)

	// Use them: validate over REST and gRPC, list with each as Bearer,
	// revoke one by its secret in the path and one by id.
	for _, tok := range []string{up.APIToken, native.Secret, sem.ID, grpcSecret} {
		if v := validate(t, srv, tok); v["valid"] != true {
			t.Fatalf("validate: %v", v)
		}
		if r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: tok, RequiredScopes: []string{"admin"}}); err != nil || r.GetValid() {
			t.Fatalf("validate with a missing scope: %v %v", r, err)
		}
		if code, _ := do(t, "GET", srv.http+"/api-tokens", map[string]string{"authorization": tok}, "", nil); code != 200 {
			t.Fatalf("list with a token: %d", code)
		}
	}
	b.expect(http.StatusNoContent, "DELETE", "/api/user/tokens/"+grpcSecret, seedJSON, "")
	if code, _ := do(t, "DELETE", srv.http+"/v1/tokens/"+native.Token.ID, creds, "", nil); code != 200 {
		t.Fatalf("revoke by id: %d", code)
	}
	// A token with a typo, a revoked one, an unknown one, as credentials.
	for _, tok := range []string{up.APIToken + "x", native.Secret, "km_" + strings.Repeat("Z", 49)} {
		do(t, "GET", srv.http+"/v1/tokens", map[string]string{"authorization": "Bearer " + tok}, "", nil)
	}

	// Password change, sign in again, sign out; a stale cookie.
	body, _ := json.Marshal(map[string]string{"currentPassword": pw, "newPassword": newPW})
	b.expect(http.StatusOK, "PUT", "/v1/user/password", seedJSON, string(body))
	old := b.session()
	b.login(email, newPW)
	secrets.add(b.session())
	b.expect(http.StatusNoContent, "POST", "/api/auth/logout", seedJSON, "")
	newBrowser(t, srv.http).call("GET", "/v1/user", map[string]string{"Cookie": "keymint_session=" + old}, "")

	// Bad passwords, an unknown account, a throttled one.
	for i, wrong := range []string{"wrong password one", "wrong password two", "wrong password three",
		"wrong password four", "wrong password five", "wrong password six"} {
		secrets.add(wrong)
		who := email
		if i%2 == 1 {
			who = "ghost@example.com"
		}
		do(t, "POST", srv.http+"/api-tokens", map[string]string{"content-type": "application/json", "x-api-email": who, "x-api-password": wrong}, upsolverBody, nil)
		newBrowser(t, srv.http).call("POST", "/api/auth/login", seedJSON, `{"auth":"`+who+`","password":"`+wrong+`"}`)
	}

	// The admin reads the audit log.
	if code, out := do(t, "GET", srv.http+"/v1/audit-events", map[string]string{"x-api-email": admin, "x-api-password": adminPW}, "", nil); code != 200 {
		t.Fatalf("audit events: %d %s", code, out)
	} else if leaked := secrets.leaks(out); len(leaked) > 0 {
		t.Fatalf("the audit log shows secrets: %q", leaked)
	}

	srv.stop()
	logs := srv.logs.String()
	if !strings.Contains(logs, `"msg":"http"`) || !strings.Contains(logs, `"msg":"rpc"`) {
		t.Fatal("the logs hold no access log lines: nothing was checked")
	}
	if leaked := secrets.leaks(logs); len(leaked) > 0 {
		t.Fatalf("logs contain %d secrets: %q", len(leaked), leaked)
	}
	t.Logf("%d secrets, none in %d bytes of logs", len(secrets.list), len(logs))
}

// Every token route, reached by another organization (even its admin, with
// password, token or session credentials), answers 404 for a token that is
// not theirs, never 403; nothing of the token's org is listed, its audit log
// included; and the token still works afterwards.
func TestCrossOrgAccessEveryRoute(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const pw = "cross org password"
	createUser(t, cfg, "alice@a.example", "org-a", pw, false)
	createUser(t, cfg, "admin@a.example", "org-a", pw, true)
	createUser(t, cfg, "eve@b.example", "org-b", pw, true)
	srv := startServer(t, cfg)
	alice := map[string]string{"content-type": "application/json", "x-api-email": "alice@a.example", "x-api-password": pw}
	var victim upsolverToken
	if code, body := do(t, "POST", srv.http+"/api-tokens", alice, `{"displayData":{"name":"alice"}}`, &victim); code != 200 {
		t.Fatalf("mint: %d %s", code, body)
	}

	eveCreds := map[string]string{"content-type": "application/json", "x-api-email": "eve@b.example", "x-api-password": pw}
	evePW := eveCreds
	eveAdminToken := mintToken(t, srv, "eve@b.example", pw, "keymint:admin")
	eveToken := map[string]string{"content-type": "application/json", "authorization": "Bearer " + eveAdminToken}
	eveBrowser := newBrowser(t, srv.http)
	eveBrowser.login("eve@b.example", pw)

	routes := []struct{ method, path string }{
		{"GET", "/v1/tokens/" + victim.ID},
		{"POST", "/v1/tokens/" + victim.ID + ":revoke"},
		{"DELETE", "/v1/tokens/" + victim.ID},
		{"GET", "/api-tokens/" + victim.ID},
		{"DELETE", "/api-tokens/" + victim.ID},
		{"DELETE", "/api/user/tokens/" + victim.ID},
		{"DELETE", "/api/user/tokens/" + victim.APIToken},
	}
	for _, r := range routes {
		for name, h := range map[string]map[string]string{"password": evePW, "token": eveToken} {
			if code, body := do(t, r.method, srv.http+r.path, h, "{}", nil); code != http.StatusNotFound {
				t.Errorf("eve (%s) %s %s = %d %s, want 404", name, r.method, r.path, code, body)
			}
		}
		if resp, body := eveBrowser.call(r.method, r.path, seedJSON, "{}"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("eve (session) %s %s = %d %s, want 404", r.method, r.path, resp.StatusCode, body)
		}
	}
	// gRPC: the same.
	ctx := outgoing("eve@b.example", pw)
	if _, err := srv.client.GetToken(ctx, &keymintv1.GetTokenRequest{Id: victim.ID}); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC GetToken = %v, want NotFound", err)
	}
	for _, req := range []*keymintv1.RevokeTokenRequest{{Id: victim.ID}, {Token: victim.APIToken}} {
		if _, err := srv.client.RevokeToken(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("gRPC RevokeToken(%v) = %v, want NotFound", req, err)
		}
	}
	// Lists show nothing of org-a.
	for _, path := range []string{"/api-tokens", "/v1/tokens?allUsers=true&showInactive=true", "/api/user/tokens", "/v1/audit-events"} {
		for name, h := range map[string]map[string]string{"password": evePW, "token": eveToken} {
			code, body := do(t, "GET", srv.http+path, h, "", nil)
			if code != 200 || strings.Contains(body, victim.ID) || strings.Contains(body, "alice") || strings.Contains(body, "org-a") {
				t.Errorf("eve (%s) GET %s = %d %s", name, path, code, body)
			}
		}
	}
	// A member who is no admin reads only the events about their own tokens
	// that others caused (leak reports): here, none, not even their mint.
	var own struct {
		Events []map[string]any `json:"events"`
	}
	if code, body := do(t, "GET", srv.http+"/v1/audit-events", alice, "", &own); code != http.StatusOK || len(own.Events) != 0 {
		t.Errorf("non-admin audit log = %d %s, want 200 and no events", code, body)
	}
	// org-a's admin sees the mint; alice's token still works.
	var page struct {
		Events []map[string]any `json:"events"`
	}
	do(t, "GET", srv.http+"/v1/audit-events", map[string]string{"x-api-email": "admin@a.example", "x-api-password": pw}, "", &page)
	found := false
	for _, e := range page.Events {
		if e["action"] == "token.mint" && e["targetId"] == victim.ID {
			found = true
		}
		if strings.Contains(e["actorEmail"].(string), "eve") {
			t.Errorf("org-a's audit log shows org-b's user: %v", e)
		}
	}
	if !found {
		t.Errorf("org-a's audit log lacks alice's mint: %v", page.Events)
	}
	if v := validate(t, srv, victim.APIToken); v["valid"] != true {
		t.Fatalf("alice's token after the attempts: %v", v)
	}
}

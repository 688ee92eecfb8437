package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestConsoleListingAPI checks, over REST, what the console's lists rest on:
// ListTokens' search, filters, sort and owner (admins only),
// GetTokenHistory's chain and events, and ListAuditEvents' filters; bad
// values are 400s that name the parameter, never echo it.
func TestConsoleListingAPI(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const password = "console api password"
	createUser(t, cfg, "boss@example.com", "acme", password, true)
	createUser(t, cfg, "dev@example.com", "acme", password, false)
	srv := startServer(t, cfg)
	h := func(email string) map[string]string {
		return map[string]string{"x-api-email": email, "x-api-password": password, "Content-Type": "application/json"}
	}
	type token struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Hint string `json:"hint"`
	}
	mint := func(email, body string) token {
		t.Helper()
		var out struct{ Token token }
		if code, b := do(t, "POST", srv.http+"/v1/tokens", h(email), body, &out); code != http.StatusOK {
			t.Fatalf("mint = %d %s", code, b)
		}
		return out.Token
	}
	a := mint("dev@example.com", `{"name":"Deploy bot","scopes":["deploy"],"ttl":"86400s"}`)
	b := mint("dev@example.com", `{"name":"ci","description":"runs the DEPLOY job","ttl":"8640000s"}`)
	c := mint("dev@example.com", `{"name":"reader"}`)
	boss := mint("boss@example.com", `{"name":"boss deploy"}`)

	list := func(email string, q url.Values) []string {
		t.Helper()
		var out struct{ Tokens []token }
		if code, body := do(t, "GET", srv.http+"/v1/tokens?"+q.Encode(), h(email), "", &out); code != http.StatusOK {
			t.Fatalf("list %s = %d %s", q.Encode(), code, body)
		}
		names := make([]string, len(out.Tokens))
		for i, tok := range out.Tokens {
			names[i] = tok.Name
		}
		return names
	}
	for _, tc := range []struct {
		email string
		q     url.Values
		want  string
	}{
		{"dev@example.com", url.Values{"query": {"deploy"}}, "ci,Deploy bot"},
		{"dev@example.com", url.Values{"query": {a.Hint[:9]}}, "Deploy bot"},
		{"dev@example.com", url.Values{"scope": {"deploy"}}, "Deploy bot"},
		{"dev@example.com", url.Values{"expiresWithin": {"172800s"}}, "Deploy bot"},
		{"dev@example.com", url.Values{"orderBy": {"expire_time"}}, "Deploy bot,ci,reader"},
		{"dev@example.com", url.Values{"orderBy": {"create_time asc"}}, "Deploy bot,ci,reader"},
		{"boss@example.com", url.Values{"query": {"deploy"}, "allUsers": {"true"}}, "boss deploy,ci,Deploy bot"},
	} {
		if got := strings.Join(list(tc.email, tc.q), ","); got != tc.want {
			t.Errorf("%s lists %s: %s, want %s", tc.email, tc.q.Encode(), got, tc.want)
		}
	}
	// The owner filter: the dev's id from their own token.
	var devTok struct {
		UserID string `json:"userId"`
	}
	do(t, "GET", srv.http+"/v1/tokens/"+c.ID, h("dev@example.com"), "", &devTok)
	if got := strings.Join(list("boss@example.com", url.Values{"userId": {devTok.UserID}, "orderBy": {"create_time asc"}}), ","); got != "Deploy bot,ci,reader" {
		t.Errorf("admin lists the dev's tokens: %s", got)
	}

	// Refusals: right status, the parameter named, the value never echoed.
	for _, tc := range []struct {
		email string
		q     string
		code  int
		names string
	}{
		{"dev@example.com", "userId=" + devTok.UserID, http.StatusForbidden, "admin"},
		{"dev@example.com", "orderBy=" + url.QueryEscape("secret_column"), http.StatusBadRequest, "orderBy"},
		{"dev@example.com", "query=" + strings.Repeat("x", 201), http.StatusBadRequest, "query"},
		{"dev@example.com", "expiresWithin=-5s", http.StatusBadRequest, "expiresWithin"},
		{"boss@example.com", "userId=not-a-uuid", http.StatusBadRequest, "userId"},
	} {
		code, body := do(t, "GET", srv.http+"/v1/tokens?"+tc.q, h(tc.email), "", nil)
		if code != tc.code || !strings.Contains(body, tc.names) || strings.Contains(body, "secret_column") || strings.Contains(body, "not-a-uuid") {
			t.Errorf("GET /v1/tokens?%.40s = %d %s, want %d naming %s", tc.q, code, body, tc.code, tc.names)
		}
	}

	// History: rotate twice; every link shows the whole chain, oldest first,
	// and the events of all of it.
	var r1, r2 struct{ Token token }
	if code, body := do(t, "POST", srv.http+"/v1/tokens/"+b.ID+":rotate", h("dev@example.com"), `{}`, &r1); code != http.StatusOK {
		t.Fatalf("rotate = %d %s", code, body)
	}
	if code, body := do(t, "POST", srv.http+"/v1/tokens/"+r1.Token.ID+":rotate", h("dev@example.com"), `{}`, &r2); code != http.StatusOK {
		t.Fatalf("rotate = %d %s", code, body)
	}
	for _, id := range []string{b.ID, r1.Token.ID, r2.Token.ID} {
		var hist struct {
			RotationChain []token
			Events        []struct{ Action, TargetID string }
		}
		if code, body := do(t, "GET", srv.http+"/v1/tokens/"+id+"/history", h("dev@example.com"), "", &hist); code != http.StatusOK {
			t.Fatalf("history = %d %s", code, body)
		}
		var ids, actions []string
		for _, tok := range hist.RotationChain {
			ids = append(ids, tok.ID)
		}
		for _, e := range hist.Events {
			actions = append(actions, e.Action)
		}
		if want := b.ID + "," + r1.Token.ID + "," + r2.Token.ID; strings.Join(ids, ",") != want {
			t.Errorf("history of %s: chain %v, want %s", id, ids, want)
		}
		// Each rotation records the rotation and the successor's mint; two
		// may share a timestamp, so the order is not compared.
		slices.Sort(actions)
		if got := strings.Join(actions, ","); got != "token.mint,token.mint,token.mint,token.rotate,token.rotate" {
			t.Errorf("history of %s: events %s", id, got)
		}
	}
	// Another user's token, even an admin's, is a 404 to a member.
	if code, _ := do(t, "GET", srv.http+"/v1/tokens/"+boss.ID+"/history", h("dev@example.com"), "", nil); code != http.StatusNotFound {
		t.Errorf("a member reads an admin's token history: %d", code)
	}

	// The audit log's filters.
	audit := func(q string) []string {
		t.Helper()
		var out struct {
			Events []struct{ Action, ActorEmail string }
		}
		if code, body := do(t, "GET", srv.http+"/v1/audit-events?"+q, h("boss@example.com"), "", &out); code != http.StatusOK {
			t.Fatalf("audit %s = %d %s", q, code, body)
		}
		var s []string
		for _, e := range out.Events {
			s = append(s, e.Action+" "+e.ActorEmail)
		}
		return s
	}
	if got := audit("action=token.mint&actor=boss%40example.com"); len(got) != 1 || got[0] != "token.mint boss@example.com" {
		t.Errorf("audit filtered by action and actor: %q", got)
	}
	if got := audit("action=token.rotate"); len(got) != 2 {
		t.Errorf("audit filtered by action: %q", got)
	}
	if got := audit("startTime=2999-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("audit events from the future: %q", got)
	}
	code, body := do(t, "GET", srv.http+"/v1/audit-events?startTime=2030-01-01T00:00:00Z&endTime=2020-01-01T00:00:00Z", h("boss@example.com"), "", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "startTime") {
		t.Errorf("audit with an empty window = %d %s", code, body)
	}
}

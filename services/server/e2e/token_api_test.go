package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// upsolverBody is the seed page's request body as curl sends it: the
// description holds a raw newline.
const upsolverBody = `{
	"displayData": {
		"name": "Data Sources Bot API Token",
		"description": "API Token used by the bot 
to create Data Sources"
	}
}`

type upsolverToken struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organizationId"`
	DisplayData    struct {
		Name          string `json:"name"`
		Description   string `json:"description"`
		StatusMessage string `json:"statusMessage"`
		StatusType    string `json:"statusType"`
		CreationTime  string `json:"creationTime"`
		CreatedBy     string `json:"createdBy"`
	} `json:"displayData"`
	APIToken  string `json:"apiToken"`
	CreatedBy string `json:"createdBy"`
}

type storeKind struct {
	name  string
	setup func(t *testing.T, cfg *Config)
}

var storeKinds = []storeKind{
	{"sqlite", func(t *testing.T, cfg *Config) {}},
	{"postgres", func(t *testing.T, cfg *Config) {
		cfg.DatabaseURL = pgtest.NewDatabase(t)
		cfg.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	}},
}

// TestEndToEnd walks the README: create a user, mint through the Upsolver
// route exactly as the seed's curl does, list, validate over REST and gRPC,
// revoke, restart, and check the database holds no secret.
func TestEndToEnd(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			sk.setup(t, &cfg)
			const email, password = "Docs@Example.com", "a long test password"
			createUser(t, cfg, email, "acme", password, false)
			srv := startServer(t, cfg)
			creds := map[string]string{
				"content-type":   "application/json",
				"x-api-email":    email,
				"x-api-password": password,
			}

			var minted upsolverToken
			code, body := do(t, "POST", srv.http+"/api-tokens/", creds, upsolverBody, &minted)
			if code != 200 {
				t.Fatalf("POST /api-tokens/ = %d %s", code, body)
			}
			secret := minted.APIToken
			if !strings.HasPrefix(secret, "km_") || minted.ID == "" || minted.OrganizationID == "" ||
				minted.DisplayData.Name != "Data Sources Bot API Token" ||
				minted.DisplayData.Description != "API Token used by the bot \nto create Data Sources" ||
				minted.DisplayData.StatusType != "ok" || minted.CreatedBy != "docs@example.com" ||
				minted.DisplayData.CreationTime == "" {
				t.Fatalf("unexpected mint answer %s", body)
			}

			// List with the token itself (raw authorization, as Upsolver does).
			var list []upsolverToken
			code, body = do(t, "GET", srv.http+"/api-tokens", map[string]string{"authorization": secret}, "", &list)
			if code != 200 || len(list) != 1 || list[0].ID != minted.ID || strings.Contains(body, secret) || list[0].APIToken != "" {
				t.Fatalf("GET /api-tokens = %d %s", code, body)
			}
			code, _ = do(t, "GET", srv.http+"/v1/tokens", map[string]string{"authorization": "Bearer " + secret}, "", nil)
			if code != 200 {
				t.Fatalf("GET /v1/tokens with Bearer = %d", code)
			}

			validateREST := func(tok string) map[string]any {
				var v map[string]any
				code, body := do(t, "POST", srv.http+"/v1/tokens:validate", nil, `{"token":"`+tok+`"}`, &v)
				if code != 200 {
					t.Fatalf("validate = %d %s", code, body)
				}
				return v
			}
			if v := validateREST(secret); v["valid"] != true || v["tokenId"] != minted.ID || v["organizationId"] != minted.OrganizationID {
				t.Fatalf("REST validate of a good token: %v", v)
			}
			ctx := context.Background()
			gv, err := srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: secret})
			if err != nil || !gv.Valid || gv.TokenId != minted.ID {
				t.Fatalf("gRPC validate: %v %v", gv, err)
			}
			if v := validateREST("km_garbage"); v["valid"] != false || v["reason"] != "MALFORMED" {
				t.Fatalf("validate garbage: %v", v)
			}
			gv, _ = srv.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: secret, RequiredScopes: []string{"admin:write"}})
			if gv.Valid || gv.Reason != keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE {
				t.Fatalf("validate with missing scope: %v", gv)
			}

			code, body = do(t, "DELETE", srv.http+"/api-tokens/"+minted.ID, map[string]string{"authorization": secret}, "", nil)
			if code != 200 {
				t.Fatalf("DELETE /api-tokens/{id} = %d %s", code, body)
			}
			if v := validateREST(secret); v["valid"] != false || v["reason"] != "REVOKED" {
				t.Fatalf("validate after revoke: %v", v)
			}

			// A second token survives a restart.
			var second upsolverToken
			if code, body := do(t, "POST", srv.http+"/api-tokens", creds, `{"displayData":{"name":"kept"}}`, &second); code != 200 {
				t.Fatalf("second mint = %d %s", code, body)
			}
			srv.stop()
			srv = startServer(t, cfg)
			if v := validateREST(second.APIToken); v["valid"] != true {
				t.Fatalf("token lost across restart: %v", v)
			}
			if v := validateREST(secret); v["reason"] != "REVOKED" {
				t.Fatalf("revocation lost across restart: %v", v)
			}
			md := metadata.Pairs("x-api-email", email, "x-api-password", password)
			lr, err := srv.client.ListTokens(metadata.NewOutgoingContext(ctx, md), &keymintv1.ListTokensRequest{ShowInactive: true})
			if err != nil || len(lr.Tokens) != 2 {
				t.Fatalf("gRPC list after restart: %v %v", lr, err)
			}

			// The database holds neither secret nor password.
			srv.stop()
			dump := dumpDatabase(t, cfg)
			for _, s := range []string{secret, second.APIToken, password} {
				if strings.Contains(dump, s) {
					t.Fatal("database dump contains a secret")
				}
			}
			if !strings.Contains(dump, "argon2id") || !strings.Contains(dump, minted.ID) {
				t.Fatal("dump does not look like the keymint database")
			}
			for _, s := range []string{secret, second.APIToken, password} {
				if strings.Contains(srv.logs.String(), s) {
					t.Fatal("server log contains a secret")
				}
			}
		})
	}
}

// dumpDatabase returns a text dump of the store: sqlite3's .dump, or every
// row of every keymint table in Postgres.
func dumpDatabase(t *testing.T, cfg Config) string {
	t.Helper()
	if cfg.DatabaseURL == "" {
		out, err := exec.Command("sqlite3", filepath.Join(cfg.DataDir, "keymint.db"), ".dump").CombinedOutput()
		if err != nil {
			// sqlite3 CLI is optional; fall back to reading rows through database/sql.
			t.Logf("sqlite3 unavailable (%v); dumping through the driver", err)
			return dumpSQL(t, "sqlite", filepath.Join(cfg.DataDir, "keymint.db"))
		}
		return string(out)
	}
	return dumpSQL(t, "pgx", cfg.DatabaseURL)
}

func dumpSQL(t *testing.T, driver, dsn string) string {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, table := range []string{"organizations", "users", "tokens", "sessions"} {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					b.Write(x)
				default:
					b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtAny(x), "\n", " ")))
				}
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		}
		rows.Close()
	}
	return b.String()
}

func fmtAny(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// TestBadInput checks every refusal is a clear JSON error with the right
// status and no echo of the credentials.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const email, password = "bad@example.com", "another test password"
	createUser(t, cfg, email, "badorg", password, false)
	srv := startServer(t, cfg)
	creds := map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": password}
	wrong := map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": "not the password"}
	unknown := map[string]string{"content-type": "application/json", "x-api-email": "nobody@example.com", "x-api-password": "not the password"}

	cases := []struct {
		name, method, path string
		headers            map[string]string
		body               string
		want               int
	}{
		{"invalid json", "POST", "/api-tokens", creds, `{"displayData":`, 400},
		{"missing name", "POST", "/api-tokens", creds, `{"displayData":{"description":"x"}}`, 400},
		{"wrong password", "POST", "/api-tokens", wrong, `{"displayData":{"name":"x"}}`, 401},
		{"unknown email", "POST", "/api-tokens", unknown, `{"displayData":{"name":"x"}}`, 401},
		{"no credentials", "POST", "/api-tokens", map[string]string{"content-type": "application/json"}, `{"displayData":{"name":"x"}}`, 401},
		{"bad token as credential", "GET", "/api-tokens", map[string]string{"authorization": "km_nope"}, "", 401},
		{"native invalid json", "POST", "/v1/tokens", creds, `{"name":`, 400},
		{"native unknown field", "POST", "/v1/tokens", creds, `{"name":"x","bogus":1}`, 400},
		{"native missing name", "POST", "/v1/tokens", creds, `{}`, 400},
		{"bad scope", "POST", "/v1/tokens", creds, `{"name":"x","scopes":["has space"]}`, 400},
		{"past expiry", "POST", "/v1/tokens", creds, `{"name":"x","expireTime":"2001-01-01T00:00:00Z"}`, 400},
		{"ttl and expiry", "POST", "/v1/tokens", creds, `{"name":"x","ttl":"60s","expireTime":"2101-01-01T00:00:00Z"}`, 400},
		{"get unknown id", "GET", "/v1/tokens/00000000-0000-0000-0000-000000000000", creds, "", 404},
		{"get non-uuid id", "GET", "/v1/tokens/../../etc", creds, "", 404},
		{"revoke unknown", "DELETE", "/api-tokens/00000000-0000-0000-0000-000000000000", creds, "", 404},
		{"bad page token", "GET", "/v1/tokens?pageToken=%%%", creds, "", 400},
		{"all users not admin", "GET", "/v1/tokens?allUsers=true", creds, "", 403},
		{"unknown route", "GET", "/nope", nil, "", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e map[string]any
			code, body := do(t, c.method, srv.http+c.path, c.headers, c.body, &e)
			if code != c.want {
				t.Fatalf("%s %s = %d %s, want %d", c.method, c.path, code, body, c.want)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Fatalf("error body has no message: %s", body)
			}
			for _, bad := range []string{password, "not the password", "goroutine", ".go:"} {
				if strings.Contains(body, bad) {
					t.Fatalf("error body leaks %q: %s", bad, body)
				}
			}
		})
	}

	// Unknown email and wrong password answer identically.
	_, b1 := do(t, "POST", srv.http+"/api-tokens", wrong, `{"displayData":{"name":"x"}}`, nil)
	_, b2 := do(t, "POST", srv.http+"/api-tokens", unknown, `{"displayData":{"name":"x"}}`, nil)
	if b1 != b2 {
		t.Fatalf("unknown user and wrong password differ:\n%s\n%s", b1, b2)
	}

	// A token cannot mint a token.
	var minted upsolverToken
	do(t, "POST", srv.http+"/api-tokens", creds, `{"displayData":{"name":"x"}}`, &minted)
	code, body := do(t, "POST", srv.http+"/api-tokens", map[string]string{"authorization": minted.APIToken}, `{"displayData":{"name":"y"}}`, nil)
	if code != 403 {
		t.Fatalf("mint with a token = %d %s, want 403", code, body)
	}

	// gRPC: the same errors as status codes.
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", "wrong password"))
	_, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "x"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC mint with wrong password: %v", err)
	}
	ctx = metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	_, err = srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC mint without name: %v", err)
	}
}

// TestTenantIsolation: another user's or org's token ids answer 404 on every
// route; an org admin reaches the org's tokens with password credentials.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pw := "isolation password"
	createUser(t, cfg, "alice@a.example", "org-a", pw, false)
	createUser(t, cfg, "bob@a.example", "org-a", pw, false)
	createUser(t, cfg, "admin@a.example", "org-a", pw, true)
	createUser(t, cfg, "eve@b.example", "org-b", pw, true)
	srv := startServer(t, cfg)
	as := func(email string) map[string]string {
		return map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": pw}
	}
	var alice upsolverToken
	if code, body := do(t, "POST", srv.http+"/api-tokens", as("alice@a.example"), `{"displayData":{"name":"alice"}}`, &alice); code != 200 {
		t.Fatalf("mint: %d %s", code, body)
	}
	for _, who := range []string{"bob@a.example", "eve@b.example"} {
		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/tokens/" + alice.ID},
			{"POST", "/v1/tokens/" + alice.ID + ":revoke"},
			{"DELETE", "/v1/tokens/" + alice.ID},
			{"DELETE", "/api-tokens/" + alice.ID},
		} {
			if code, body := do(t, r.method, srv.http+r.path, as(who), "{}", nil); code != 404 {
				t.Fatalf("%s %s %s = %d %s, want 404", who, r.method, r.path, code, body)
			}
		}
		var list []upsolverToken
		do(t, "GET", srv.http+"/api-tokens", as(who), "", &list)
		if len(list) != 0 {
			t.Fatalf("%s lists alice's token", who)
		}
	}
	// Eve is an admin, but of another org: still 404 and not listed.
	var all struct {
		Tokens []map[string]any `json:"tokens"`
	}
	do(t, "GET", srv.http+"/v1/tokens?allUsers=true", as("eve@b.example"), "", &all)
	if len(all.Tokens) != 0 {
		t.Fatal("admin of org-b lists org-a tokens")
	}
	do(t, "GET", srv.http+"/v1/tokens?allUsers=true", as("admin@a.example"), "", &all)
	if len(all.Tokens) != 1 {
		t.Fatalf("org-a admin lists %d tokens, want 1", len(all.Tokens))
	}
	if code, _ := do(t, "GET", srv.http+"/v1/tokens/"+alice.ID, as("admin@a.example"), "", nil); code != 200 {
		t.Fatalf("org admin cannot get a member's token: %d", code)
	}
	// Valid still validates.
	gv, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: alice.APIToken})
	if err != nil || !gv.Valid {
		t.Fatalf("alice's token: %v %v", gv, err)
	}
}

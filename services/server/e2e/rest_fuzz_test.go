package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// restFuzzRoutes are the REST routes that decode a JSON body: the Upsolver,
// Semaphore and native ones.
var restFuzzRoutes = []struct{ method, path string }{
	{"POST", "/api-tokens"},
	{"POST", "/api-tokens/"},
	{"POST", "/v1/tokens"},
	{"POST", "/v1/tokens:validate"},
	{"POST", "/api/auth/login"},
	{"POST", "/api/user/tokens"},
	{"PUT", "/v1/user/password"},
	{"POST", "/v1/tokens/00000000-0000-0000-0000-000000000000:revoke"},
}

// FuzzRESTBodies sends arbitrary bodies to every JSON route of a real
// keymint (embedded store), as each kind of caller: the answer is never a
// panic or a 5xx, always 2xx or 4xx, and JSON whenever it has a body.
func FuzzRESTBodies(f *testing.F) {
	cfg := testConfig(f)
	// Bad passwords are part of the input: no throttle, or the run would
	// soon answer 429 only.
	cfg.Abuse.AccountLimit, cfg.Abuse.IPLimit = "off", "off"
	const email, pw = "fuzz@example.com", "the fuzzing password"
	createUser(f, cfg, email, "fuzzorg", pw, true)
	srv := startServer(f, cfg)
	token := mintToken(f, srv, email, pw, "read", "keymint:admin")
	h := srv.srv.Handler()

	// A session cookie, signed in through the handler itself.
	login := httptest.NewRequest("POST", "/api/auth/login", strings.NewReader(`{"auth":"`+email+`","password":"`+pw+`"}`))
	login.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, login)
	var session *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "keymint_session" {
			session = c
		}
	}
	if rec.Code != http.StatusNoContent || session == nil {
		f.Fatalf("sign-in for the fuzz session = %d %s", rec.Code, rec.Body)
	}

	for i, body := range []string{
		upsolverBody,
		`{"displayData":{"name":"seed","description":"d"}}`,
		`{"name":"seed","scopes":["read"],"ttl":"3600s"}`,
		`{"name":"seed","expireTime":"2101-01-01T00:00:00Z"}`,
		`{"token":"km_garbage","requiredScopes":["read"]}`,
		`{"auth":"fuzz@example.com","password":"not it"}`,
		`{"name":"semaphore","ttl":"720h","scopes":["a","b"]}`,
		`{"currentPassword":"not it","newPassword":"short"}`,
		`{"id":"00000000-0000-0000-0000-000000000000"}`,
		``, `null`, `[]`, `{`, `{"name":1e400}`, "{\"name\":\"\xff\"}", `{"displayData":null}`,
	} {
		f.Add(byte(i), byte(i/len(restFuzzRoutes)), []byte(body))
	}
	f.Fuzz(func(t *testing.T, route, who byte, body []byte) {
		r := restFuzzRoutes[int(route)%len(restFuzzRoutes)]
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		switch who % 4 {
		case 0:
			req.Header.Set("X-Api-Email", email)
			req.Header.Set("X-Api-Password", pw)
		case 1:
			req.Header.Set("Authorization", "Bearer "+token)
		case 2:
			req.AddCookie(session)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %s as %d with %q = %d %s", r.method, r.path, who%4, body, rec.Code, rec.Body)
		}
		if rec.Body.Len() > 0 {
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("%s %s with %q: Content-Type %q", r.method, r.path, body, ct)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s with %q: answer is not JSON: %s", r.method, r.path, body, rec.Body)
			}
		}
	})
}

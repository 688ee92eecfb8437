package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedJSON are the headers of every curl example on the Semaphore seed page.
var seedJSON = map[string]string{"Content-Type": "application/json", "Accept": "application/json"}

// semaphoreToken is the Semaphore token shape keymint answers with.
type semaphoreToken struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Expired bool   `json:"expired"`
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	Hint    string `json:"hint"`
	TokenID string `json:"token_id"`
}

// browser is an HTTP client with its own cookie jar, like curl -b/-c.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, client: &http.Client{Jar: jar}}
}

// call sends a request with the jar's cookies and returns the response (body
// read into the second result).
func (b *browser) call(method, path string, headers map[string]string, body string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// expect is call that fails the test unless the status is want.
func (b *browser) expect(want int, method, path string, headers map[string]string, body string) string {
	b.t.Helper()
	resp, out := b.call(method, path, headers, body)
	if resp.StatusCode != want {
		b.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}

// login signs in as the seed's curl does.
func (b *browser) login(email, password string) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"auth": email, "password": password})
	b.expect(http.StatusNoContent, "POST", "/api/auth/login", seedJSON, string(body))
}

// session returns the jar's session cookie value ("" if none).
func (b *browser) session() string {
	u, _ := url.Parse(b.base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "keymint_session" {
			return c.Value
		}
	}
	return ""
}

func (b *browser) tokens() []semaphoreToken {
	b.t.Helper()
	var list []semaphoreToken
	out := b.expect(http.StatusOK, "GET", "/api/user/tokens", seedJSON, "")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		b.t.Fatalf("GET /api/user/tokens: %v: %s", err, out)
	}
	return list
}

func (b *browser) mint(body string) semaphoreToken {
	b.t.Helper()
	var tok semaphoreToken
	out := b.expect(http.StatusCreated, "POST", "/api/user/tokens", seedJSON, body)
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		b.t.Fatalf("POST /api/user/tokens: %v: %s", err, out)
	}
	return tok
}

func validate(t *testing.T, srv *testServer, token string) map[string]any {
	t.Helper()
	var v map[string]any
	body, _ := json.Marshal(map[string]string{"token": token})
	if code, out := do(t, "POST", srv.http+"/v1/tokens:validate", nil, string(body), &v); code != 200 {
		t.Fatalf("validate = %d %s", code, out)
	}
	return v
}

// TestSemaphoreSeedFlow runs the seed page's curl examples, in order, on both
// stores: sign in, list, generate (no body), list again, use the token,
// expire it by its secret with itself as Bearer, sign out.
func TestSemaphoreSeedFlow(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			sk.setup(t, &cfg)
			const password = "semaphore seed password"
			createUser(t, cfg, "ops@example.com", "acme", password, false)
			srv := startServer(t, cfg)
			b := newBrowser(t, srv.http)

			// The email is trimmed and matched without regard to case.
			resp, out := b.call("POST", "/api/auth/login", seedJSON, `{"auth": "  Ops@Example.COM ", "password": "`+password+`"}`)
			if resp.StatusCode != http.StatusNoContent || out != "" {
				t.Fatalf("login = %d %q, want 204 and no body", resp.StatusCode, out)
			}
			checkSessionCookie(t, resp, "keymint_session", false)
			if b.session() == "" {
				t.Fatal("no session cookie after sign-in")
			}

			if list := b.tokens(); len(list) != 0 {
				t.Fatalf("fresh user lists %d tokens", len(list))
			}
			minted := b.mint("")
			if !strings.HasPrefix(minted.ID, "km_") || minted.Expired || minted.UserID == "" || minted.TokenID == "" ||
				!strings.HasPrefix(minted.Name, "semaphore token ") || !strings.HasPrefix(minted.ID, minted.Hint) {
				t.Fatalf("unexpected mint answer %+v", minted)
			}
			if _, err := time.Parse(time.RFC3339, minted.Created); err != nil || !strings.HasSuffix(minted.Created, "Z") {
				t.Fatalf("created %q is not RFC 3339 UTC", minted.Created)
			}
			secret := minted.ID

			// The list shape, keys and all; the secret is never listed again.
			out = b.expect(http.StatusOK, "GET", "/api/user/tokens", seedJSON, "")
			if strings.Contains(out, secret) {
				t.Fatal("GET /api/user/tokens shows a secret again")
			}
			var raw []map[string]any
			if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw) != 1 {
				t.Fatalf("list = %s", out)
			}
			keys := make([]string, 0, len(raw[0]))
			for k := range raw[0] {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"created", "expired", "hint", "id", "name", "user_id"}; !slices.Equal(keys, want) {
				t.Fatalf("list keys = %v, want %v", keys, want)
			}
			if raw[0]["id"] != minted.TokenID || raw[0]["expired"] != false || raw[0]["user_id"] != minted.UserID {
				t.Fatalf("list entry = %v", raw[0])
			}

			// A token works as Bearer on these routes and with the REST API.
			bearer := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "Authorization": "Bearer " + secret}
			anon := newBrowser(t, srv.http)
			anon.expect(http.StatusOK, "GET", "/api/user/tokens", bearer, "")
			if v := validate(t, srv, secret); v["valid"] != true {
				t.Fatalf("new token does not validate: %v", v)
			}
			// It may list and expire, but not mint.
			out = anon.expect(http.StatusForbidden, "POST", "/api/user/tokens", bearer, "")
			if !strings.Contains(out, "a token cannot mint another token") {
				t.Fatalf("mint with a token: %s", out)
			}

			// The seed's expiry call: DELETE by the secret, authenticated by it.
			anon.expect(http.StatusNoContent, "DELETE", "/api/user/tokens/"+secret, bearer, "")
			if v := validate(t, srv, secret); v["valid"] != false || v["reason"] != "REVOKED" {
				t.Fatalf("after DELETE by secret: %v", v)
			}
			if list := b.tokens(); len(list) != 1 || !list[0].Expired {
				t.Fatalf("after DELETE: %+v", list)
			}

			// DELETE by token id, with the session; a body with a name.
			second := b.mint(`{"name":"deploy bot","description":"CI","scopes":["deploy:write"],"ttl":"24h"}`)
			if second.Name != "deploy bot" {
				t.Fatalf("named mint: %+v", second)
			}
			b.expect(http.StatusNoContent, "DELETE", "/api/user/tokens/"+second.TokenID, seedJSON, "")
			if v := validate(t, srv, second.ID); v["reason"] != "REVOKED" {
				t.Fatalf("after DELETE by id: %v", v)
			}
			// Expiring an expired token again is a no-op.
			b.expect(http.StatusNoContent, "DELETE", "/api/user/tokens/"+second.TokenID, seedJSON, "")

			// Sign out: 204, the cookie cleared, and the session over even
			// for someone who kept a copy of it.
			kept := b.session()
			resp, _ = b.call("POST", "/api/auth/logout", seedJSON, "")
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("logout = %d", resp.StatusCode)
			}
			if c := findCookie(resp, "keymint_session"); c == nil || c.MaxAge >= 0 || c.Value != "" {
				t.Fatalf("logout did not clear the cookie: %v", resp.Header["Set-Cookie"])
			}
			if b.session() != "" {
				t.Fatal("cookie still in the jar after sign-out")
			}
			b.expect(http.StatusUnauthorized, "GET", "/api/user/tokens", seedJSON, "")
			replay := map[string]string{"Cookie": "keymint_session=" + kept}
			anon.expect(http.StatusUnauthorized, "GET", "/api/user/tokens", replay, "")
			// Signing out again, signed out, is still a 204.
			b.expect(http.StatusNoContent, "POST", "/api/auth/logout", seedJSON, "")

			for _, s := range []string{secret, second.ID, kept, password} {
				if strings.Contains(srv.logs.String(), s) {
					t.Fatal("server log contains a secret, session or password")
				}
			}
			srv.stop()
			dump := dumpDatabase(t, cfg)
			if strings.Contains(dump, kept) || strings.Contains(dump, secret) {
				t.Fatal("database holds a session secret or token secret")
			}
		})
	}
}

func findCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// checkSessionCookie checks a sign-in's Set-Cookie: the name, HttpOnly,
// SameSite=Strict, Path=/, no Domain, Secure as wanted, a Max-Age near the
// absolute expiry, and a 256-bit value.
func checkSessionCookie(t *testing.T, resp *http.Response, name string, secure bool) {
	t.Helper()
	c := findCookie(resp, name)
	if c == nil {
		t.Fatalf("no %s cookie in %v", name, resp.Header["Set-Cookie"])
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || c.Secure != secure {
		t.Fatalf("cookie attributes: HttpOnly=%v SameSite=%v Path=%q Domain=%q Secure=%v",
			c.HttpOnly, c.SameSite, c.Path, c.Domain, c.Secure)
	}
	if c.MaxAge < 60 || c.MaxAge > int((12*time.Hour).Seconds()) {
		t.Fatalf("cookie Max-Age = %d, want up to the 12h absolute expiry", c.MaxAge)
	}
	if len(c.Value) != 43 {
		t.Fatalf("session secret is %d characters, want 43 (256 bits, base64url)", len(c.Value))
	}
}

// TestSemaphoreLogin covers sign-in refusals: bad JSON, missing fields, wrong
// password and unknown user (one body for both), and cross-site attempts.
func TestSemaphoreLogin(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const password = "login test password"
	createUser(t, cfg, "amy@example.com", "acme", password, false)
	srv := startServer(t, cfg)
	b := newBrowser(t, srv.http)

	for _, c := range []struct {
		name    string
		headers map[string]string
		body    string
		want    int
	}{
		{"bad json", seedJSON, `{"auth": "amy@example.com", "password": `, 400},
		{"not an object", seedJSON, `["amy@example.com"]`, 400},
		{"wrong type", seedJSON, `{"auth": 7, "password": "x"}`, 400},
		{"empty body", seedJSON, ``, 400},
		{"no password", seedJSON, `{"auth": "amy@example.com"}`, 400},
		{"wrong password", seedJSON, `{"auth": "amy@example.com", "password": "not the password"}`, 401},
		{"unknown user", seedJSON, `{"auth": "nobody@example.com", "password": "not the password"}`, 401},
		{"form post", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `auth=amy@example.com&password=` + password, 403},
		{"text/plain (a cross-site form)", map[string]string{"Content-Type": "text/plain"}, `{"auth": "amy@example.com", "password": "` + password + `"}`, 403},
		{"cross-site fetch", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, `{"auth": "amy@example.com", "password": "` + password + `"}`, 403},
		{"foreign origin", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, `{"auth": "amy@example.com", "password": "` + password + `"}`, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := b.call("POST", "/api/auth/login", c.headers, c.body)
			if resp.StatusCode != c.want {
				t.Fatalf("login = %d %s, want %d", resp.StatusCode, out, c.want)
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(out), &e); err != nil || e["message"] == "" {
				t.Fatalf("error body is not JSON with a message: %s", out)
			}
			if findCookie(resp, "keymint_session") != nil {
				t.Fatal("a refused sign-in set a cookie")
			}
			if strings.Contains(out, password) || strings.Contains(out, "not the password") {
				t.Fatalf("error body echoes a password: %s", out)
			}
		})
	}
	_, wrong := b.call("POST", "/api/auth/login", seedJSON, `{"auth": "amy@example.com", "password": "not the password"}`)
	_, unknown := b.call("POST", "/api/auth/login", seedJSON, `{"auth": "nobody@example.com", "password": "not the password"}`)
	if wrong != unknown {
		t.Fatalf("wrong password and unknown user differ:\n%s\n%s", wrong, unknown)
	}
	if b.session() != "" {
		t.Fatal("refused sign-ins left a session cookie")
	}

	// A custom header is proof enough too, and same-origin requests pass.
	same := map[string]string{"Content-Type": "text/plain", "X-Keymint-CSRF": "1", "Origin": srv.http, "Sec-Fetch-Site": "same-origin"}
	b.expect(http.StatusNoContent, "POST", "/api/auth/login", same, `{"auth": "amy@example.com", "password": "`+password+`"}`)

	// Every sign-in gets a new session; the browser's old one ends.
	first := b.session()
	b.login("amy@example.com", password)
	if b.session() == first || b.session() == "" {
		t.Fatal("signing in again kept the session id")
	}
	newBrowser(t, srv.http).expect(http.StatusUnauthorized, "GET", "/v1/user", map[string]string{"Cookie": "keymint_session=" + first}, "")
	b.expect(http.StatusOK, "GET", "/v1/user", nil, "")
}

// TestSemaphoreCSRF: a cookie-authenticated state change needs a JSON content
// type or the custom header, and a same-origin request; reads need neither;
// a Bearer token needs no such proof (no other site can attach it).
func TestSemaphoreCSRF(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const password = "csrf test password"
	createUser(t, cfg, "cat@example.com", "acme", password, false)
	srv := startServer(t, cfg)
	b := newBrowser(t, srv.http)
	b.login("cat@example.com", password)
	victim := b.mint(`{"name":"victim"}`)

	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	plain := map[string]string{"Content-Type": "text/plain"}
	for _, c := range []struct {
		name, method, path string
		headers            map[string]string
		body               string
	}{
		{"mint, no content type", "POST", "/api/user/tokens", nil, ""},
		{"mint, form", "POST", "/api/user/tokens", form, "name=x"},
		{"mint, text/plain", "POST", "/api/user/tokens", plain, `{"name":"x"}`},
		{"mint, cross-site", "POST", "/api/user/tokens", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, ""},
		{"mint, same-site subdomain", "POST", "/api/user/tokens", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, ""},
		{"mint, foreign origin", "POST", "/api/user/tokens", map[string]string{"X-Keymint-CSRF": "1", "Origin": "http://evil.example"}, ""},
		{"mint, null origin", "POST", "/api/user/tokens", map[string]string{"X-Keymint-CSRF": "1", "Origin": "null"}, ""},
		{"mint, X-Requested-With from a foreign origin", "POST", "/api/user/tokens", map[string]string{"X-Requested-With": "XMLHttpRequest", "Origin": "http://evil.example"}, ""},
		{"native mint, form", "POST", "/v1/tokens", form, "name=x"},
		{"delete, no header", "DELETE", "/api/user/tokens/" + victim.TokenID, nil, ""},
		{"native delete, no header", "DELETE", "/v1/tokens/" + victim.TokenID, nil, ""},
		{"native revoke, text/plain", "POST", "/v1/tokens/" + victim.TokenID + ":revoke", plain, "{}"},
		{"upsolver delete, no header", "DELETE", "/api-tokens/" + victim.TokenID, nil, ""},
		{"password, text/plain", "PUT", "/v1/user/password", plain, `{"currentPassword":"` + password + `","newPassword":"pwned password 123"}`},
		{"logout, form", "POST", "/api/auth/logout", form, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := b.call(c.method, c.path, c.headers, c.body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(out, "cross-site request refused") {
				t.Fatalf("%s %s = %d %s, want 403", c.method, c.path, resp.StatusCode, out)
			}
		})
	}
	// Nothing changed: one token, still good, and the password and session stand.
	if list := b.tokens(); len(list) != 1 || list[0].Expired {
		t.Fatalf("after refused requests: %+v", list)
	}
	if v := validate(t, srv, victim.ID); v["valid"] != true {
		t.Fatalf("victim token: %v", v)
	}
	b.expect(http.StatusOK, "GET", "/v1/user", nil, "")
	b.login("cat@example.com", password)

	// The page's way: the custom header, no JSON body.
	b.expect(http.StatusOK, "GET", "/v1/tokens", nil, "")
	b.expect(http.StatusOK, "DELETE", "/v1/tokens/"+victim.TokenID, map[string]string{"X-Keymint-CSRF": "1"}, "")
	// X-Requested-With is a proof too (README, CSRF): a form cannot send it.
	// Mutation: gateway/csrf.go drops it from the accepted proofs,
	// `|| r.Header.Get("X-Requested-With") != ""` removed.
	xhr := b.mint(`{"name":"xhr"}`)
	b.expect(http.StatusOK, "DELETE", "/v1/tokens/"+xhr.TokenID, map[string]string{"X-Requested-With": "XMLHttpRequest"}, "")

	// A Bearer token needs no CSRF proof, even with the cookie present.
	other := b.mint(`{"name":"other"}`)
	b.expect(http.StatusNoContent, "DELETE", "/api/user/tokens/"+other.TokenID, map[string]string{"Authorization": "Bearer " + other.ID}, "")

	// No CORS: a preflight gets no Access-Control-* header.
	resp, _ := b.call("OPTIONS", "/api/user/tokens", map[string]string{
		"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
	}, "")
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("CORS header %s on a preflight", k)
		}
	}
}

// TestSemaphoreSessionExpiry: past the absolute or the idle expiry a session
// is refused with 401, and the answer clears the cookie.
func TestSemaphoreSessionExpiry(t *testing.T) {
	for _, c := range []struct {
		name      string
		idle, max time.Duration
	}{
		{"absolute", time.Hour, 6 * time.Second},
		{"idle", 6 * time.Second, time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.SessionIdle, cfg.SessionMax = c.idle, c.max
			const password = "expiry test password"
			createUser(t, cfg, "eve@example.com", "acme", password, false)
			srv := startServer(t, cfg)
			b := newBrowser(t, srv.http)
			b.login("eve@example.com", password)
			b.tokens()
			// Sent by hand: the jar itself drops a cookie past its Max-Age.
			cookie := map[string]string{"Cookie": "keymint_session=" + b.session()}
			anon := newBrowser(t, srv.http)
			time.Sleep(6500 * time.Millisecond)
			resp, out := anon.call("GET", "/api/user/tokens", cookie, "")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(out, "session expired") {
				t.Fatalf("expired session: %d %s", resp.StatusCode, out)
			}
			if c := findCookie(resp, "keymint_session"); c == nil || c.MaxAge >= 0 {
				t.Fatalf("401 did not clear the cookie: %v", resp.Header["Set-Cookie"])
			}
			anon.expect(http.StatusUnauthorized, "GET", "/v1/user", cookie, "")
			// Signing in again works.
			b.login("eve@example.com", password)
			b.tokens()
		})
	}
}

// TestSemaphoreOtherUsersToken: another user's token, by id or by secret, is
// a 404 exactly like an unknown one, and stays good.
func TestSemaphoreOtherUsersToken(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const password = "isolation test password"
	createUser(t, cfg, "alice@a.example", "org-a", password, false)
	createUser(t, cfg, "bob@a.example", "org-a", password, false)
	createUser(t, cfg, "mallory@b.example", "org-b", password, true)
	srv := startServer(t, cfg)
	alice := newBrowser(t, srv.http)
	alice.login("alice@a.example", password)
	tok := alice.mint(`{"name":"alice's"}`)

	for _, who := range []string{"bob@a.example", "mallory@b.example"} {
		b := newBrowser(t, srv.http)
		b.login(who, password)
		_, unknownID := b.call("DELETE", "/api/user/tokens/00000000-0000-4000-8000-000000000000", seedJSON, "")
		_, unknownSecret := b.call("DELETE", "/api/user/tokens/km_"+strings.Repeat("A", 49), seedJSON, "")
		for name, path := range map[string]string{"id": tok.TokenID, "secret": tok.ID} {
			resp, out := b.call("DELETE", "/api/user/tokens/"+path, seedJSON, "")
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("%s deleting alice's token by %s = %d %s, want 404", who, name, resp.StatusCode, out)
			}
			if out != unknownID || out != unknownSecret {
				t.Fatalf("%s: alice's token by %s answers differently from an unknown one:\n%s\n%s\n%s", who, name, out, unknownID, unknownSecret)
			}
		}
		if list := b.tokens(); len(list) != 0 {
			t.Fatalf("%s lists alice's token", who)
		}
	}
	if v := validate(t, srv, tok.ID); v["valid"] != true {
		t.Fatalf("alice's token after others' attempts: %v", v)
	}
	for _, garbage := range []string{"not-a-token", "km_short", "%2e%2e"} {
		alice.expect(http.StatusNotFound, "DELETE", "/api/user/tokens/"+garbage, seedJSON, "")
	}
}

// TestPasswordChange: the signed-in user changes their password; their other
// sessions end, this one goes on; the old password stops working; a token
// cannot change a password.
func TestPasswordChange(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const oldPW, newPW = "the first password", "the second password"
	createUser(t, cfg, "pat@example.com", "acme", oldPW, false)
	srv := startServer(t, cfg)
	laptop, phone := newBrowser(t, srv.http), newBrowser(t, srv.http)
	laptop.login("pat@example.com", oldPW)
	phone.login("pat@example.com", oldPW)
	tok := laptop.mint(`{"name":"cli"}`)

	change := func(b *browser, headers map[string]string, current, next string) (int, string) {
		body, _ := json.Marshal(map[string]string{"currentPassword": current, "newPassword": next})
		resp, out := b.call("PUT", "/v1/user/password", headers, string(body))
		return resp.StatusCode, out
	}
	if code, out := change(laptop, seedJSON, "wrong current password", newPW); code != http.StatusForbidden {
		t.Fatalf("wrong current password = %d %s", code, out)
	}
	if code, out := change(laptop, seedJSON, oldPW, "short"); code != http.StatusBadRequest {
		t.Fatalf("short new password = %d %s", code, out)
	}
	bearer := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok.ID}
	if code, out := change(newBrowser(t, srv.http), bearer, oldPW, newPW); code != http.StatusForbidden {
		t.Fatalf("password change with a token = %d %s", code, out)
	}
	phone.expect(http.StatusOK, "GET", "/v1/user", nil, "")

	code, out := change(laptop, seedJSON, oldPW, newPW)
	if code != http.StatusOK || !strings.Contains(out, `"endedSessions":1`) {
		t.Fatalf("password change = %d %s", code, out)
	}
	laptop.expect(http.StatusOK, "GET", "/v1/user", nil, "")
	phone.expect(http.StatusUnauthorized, "GET", "/v1/user", nil, "")
	_, bad := newBrowser(t, srv.http).call("POST", "/api/auth/login", seedJSON, `{"auth":"pat@example.com","password":"`+oldPW+`"}`)
	if !strings.Contains(bad, "invalid credentials") {
		t.Fatalf("old password still signs in: %s", bad)
	}
	phone.login("pat@example.com", newPW)
	// Tokens are not sessions: the password change leaves them working.
	if v := validate(t, srv, tok.ID); v["valid"] != true {
		t.Fatalf("token after password change: %v", v)
	}
	if strings.Contains(srv.logs.String(), newPW) || strings.Contains(srv.logs.String(), oldPW) {
		t.Fatal("server log contains a password")
	}
}

// TestSessionMetadataNotForwarded: the x-keymint-session metadata comes from
// the cookie only; a caller cannot send it as a header through the gateway.
func TestSessionMetadataNotForwarded(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const password = "metadata test password"
	createUser(t, cfg, "max@example.com", "acme", password, false)
	srv := startServer(t, cfg)
	b := newBrowser(t, srv.http)
	b.login("max@example.com", password)
	secret := b.session()
	anon := newBrowser(t, srv.http)
	for _, h := range []string{"X-Keymint-Session", "Grpc-Metadata-X-Keymint-Session", "Grpcgateway-X-Keymint-Session"} {
		for _, path := range []string{"/v1/user", "/api/user/tokens", "/api-tokens"} {
			anon.expect(http.StatusUnauthorized, "GET", path, map[string]string{h: secret}, "")
		}
	}
	// With explicit credentials, the cookie is not used at all: a bad token
	// next to a good cookie is a 401, not a quiet fall-back to the session.
	b.expect(http.StatusUnauthorized, "GET", "/api/user/tokens", map[string]string{"Authorization": "Bearer km_nope"}, "")
}

// TestSecureCookies: with --secure-cookies the session cookie is Secure and
// __Host- prefixed, and a plain keymint_session cookie (which a network
// attacker could plant over HTTP) is ignored.
func TestSecureCookies(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.SecureCookies = true
	const password = "secure cookie password"
	createUser(t, cfg, "sec@example.com", "acme", password, false)
	srv := startServer(t, cfg)
	anon := newBrowser(t, srv.http)
	resp, out := anon.call("POST", "/api/auth/login", seedJSON, `{"auth":"sec@example.com","password":"`+password+`"}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("login = %d %s", resp.StatusCode, out)
	}
	checkSessionCookie(t, resp, "__Host-keymint_session", true)
	secret := findCookie(resp, "__Host-keymint_session").Value
	// A fresh client for each call: Go's jar treats loopback as secure and
	// would send the cookie it got along with the hand-made ones.
	anon = newBrowser(t, srv.http)
	anon.expect(http.StatusOK, "GET", "/v1/user", map[string]string{"Cookie": "__Host-keymint_session=" + secret}, "")
	anon.expect(http.StatusUnauthorized, "GET", "/v1/user", map[string]string{"Cookie": "keymint_session=" + secret}, "")
	resp, _ = anon.call("POST", "/api/auth/logout", map[string]string{"Cookie": "__Host-keymint_session=" + secret, "X-Keymint-CSRF": "1"}, "")
	if c := findCookie(resp, "__Host-keymint_session"); c == nil || !c.Secure || c.MaxAge >= 0 {
		t.Fatalf("logout did not clear the secure cookie: %v", resp.Header["Set-Cookie"])
	}
}

package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
)

// testSession is the session secret the fake AccountService hands out.
const testSession = "c2Vzc2lvbi1zZWNyZXQtb2YtdGhlLWZha2Utc2VydmVy"

// unendingSession is a session the fake cannot end: its Logout answers
// Unavailable, as the real server does with its store down.
const unendingSession = "dW5lbmRpbmctc2Vzc2lvbi1vZi10aGUtZmFrZS1zZXJ2ZXI"

// fakeAccounts is an AccountServiceServer that records what it received.
type fakeAccounts struct {
	keymintv1.UnimplementedAccountServiceServer

	mu    sync.Mutex
	calls []fakeCall
}

func (f *fakeAccounts) record(ctx context.Context, method string, req any) metadata.MD {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{method: method, md: md.Copy(), req: req})
	return md
}

func (f *fakeAccounts) callsOf(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeAccounts) Login(ctx context.Context, req *keymintv1.LoginRequest) (*keymintv1.LoginResponse, error) {
	f.record(ctx, "Login", req)
	if req.GetEmail() != testEmail || req.GetPassword() != testPassword {
		return nil, status.Error(codes.Unauthenticated, "invalid credentials")
	}
	return &keymintv1.LoginResponse{
		SessionToken: testSession,
		ExpireTime:   timestamppb.New(time.Now().Add(time.Hour)),
		UserId:       "user-1",
	}, nil
}

func (f *fakeAccounts) Logout(ctx context.Context, req *keymintv1.LogoutRequest) (*keymintv1.LogoutResponse, error) {
	md := f.record(ctx, "Logout", req)
	if s := md.Get(authn.HeaderSession); len(s) == 1 && s[0] == unendingSession {
		return nil, status.Error(codes.Unavailable, "store unavailable")
	}
	if s := md.Get(authn.HeaderSession); len(s) != 1 || s[0] != testSession {
		return nil, status.Error(codes.Unauthenticated, "session expired or invalid; sign in again")
	}
	return &keymintv1.LogoutResponse{}, nil
}

func (f *fakeAccounts) GetCurrentUser(ctx context.Context, req *keymintv1.GetCurrentUserRequest) (*keymintv1.User, error) {
	md := f.record(ctx, "GetCurrentUser", req)
	if s := md.Get(authn.HeaderSession); len(s) != 1 || s[0] != testSession {
		return nil, status.Error(codes.Unauthenticated, "session expired or invalid; sign in again")
	}
	return &keymintv1.User{Id: "user-1", Email: testEmail}, nil
}

// semGateway is a gateway in front of fake Token and Account services.
type semGateway struct {
	url      string
	tokens   *fakeTokens
	accounts *fakeAccounts
}

// newSemGateway starts both fakes and serves the gateway over plain HTTP, or
// over TLS when tlsServer is set.
func newSemGateway(t *testing.T, tlsServer bool, edit func(*Config)) *semGateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &semGateway{tokens: &fakeTokens{}, accounts: &fakeAccounts{}}
	srv := grpc.NewServer()
	keymintv1.RegisterTokenServiceServer(srv, g.tokens)
	keymintv1.RegisterAccountServiceServer(srv, g.accounts)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cfg := Config{Conn: conn, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tlsServer {
		hs := httptest.NewTLSServer(h)
		t.Cleanup(hs.Close)
		g.url = hs.URL
		return g
	}
	g.url = serve(t, h)
	return g
}

// jsonHeaders are the Semaphore seed's curl headers, plus more.
func jsonHeaders(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSemaphoreLoginSetsCookie(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	h := jsonHeaders("Authorization", "Bearer "+testToken)
	for k, vs := range hostileHeaders() {
		h[k] = vs
	}
	resp, body := send(t, http.MethodPost, g.url+"/api/auth/login",
		`{"auth": "`+testEmail+`", "password": "`+testPassword+`"}`, h)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("login = %d %s", resp.StatusCode, body)
	}
	c := cookieNamed(resp, cookieName)
	if c == nil || c.Value != testSession || !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteStrictMode ||
		c.Path != "/" || c.Domain != "" || c.MaxAge < 3500 || c.MaxAge > 3600 {
		t.Fatalf("session cookie = %+v", c)
	}
	calls := g.accounts.callsOf("Login")
	if len(calls) != 1 {
		t.Fatalf("Login calls = %d", len(calls))
	}
	req := calls[0].req.(*keymintv1.LoginRequest)
	if req.GetEmail() != testEmail || req.GetPassword() != testPassword {
		t.Errorf("LoginRequest = %v", req)
	}
	// The sign-in carries no credential metadata: its credentials are in the
	// request message, and a header sent along must not ride with it.
	checkMetadata(t, calls[0].md)
	for _, k := range credentialMetadata {
		if v := calls[0].md.Get(k); len(v) != 0 {
			t.Errorf("Login got %s metadata", k)
		}
	}
}

func TestSemaphoreLoginRefusals(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	for _, c := range []struct {
		name, body string
		header     http.Header
		httpStatus int
		code       int
		message    string
	}{
		{"bad json", `{"auth":`, jsonHeaders(), 400, 3, "request body is not valid JSON"},
		{"array", `[]`, jsonHeaders(), 400, 3, "request body must be a JSON object"},
		{"number auth", `{"auth": 1, "password": "x"}`, jsonHeaders(), 400, 3, "field auth has the wrong type"},
		{"blank auth", `{"auth": "  ", "password": "x"}`, jsonHeaders(), 400, 3, "auth (the email) and password are required"},
		{"wrong password", `{"auth": "` + testEmail + `", "password": "nope"}`, jsonHeaders(), 401, 16, "invalid credentials"},
		{"form", `auth=a&password=b`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 403, 7, ""},
		{"no content type", `{"auth": "` + testEmail + `", "password": "` + testPassword + `"}`, http.Header{}, 403, 7, ""},
	} {
		resp, body := send(t, http.MethodPost, g.url+"/api/auth/login", c.body, c.header)
		sb := wantStatusJSON(t, resp, body, c.httpStatus, c.code)
		if c.message != "" && sb.Message != c.message {
			t.Errorf("%s: message = %q, want %q", c.name, sb.Message, c.message)
		}
		if cookieNamed(resp, cookieName) != nil {
			t.Errorf("%s: a refused sign-in set a cookie", c.name)
		}
	}
	if n := len(g.accounts.callsOf("Login")); n != 1 {
		t.Errorf("Login reached the server %d times, want once (the wrong password)", n)
	}
}

// TestSessionCookieBecomesMetadata: the cookie, and only the cookie, turns
// into x-keymint-session on every kind of route.
func TestSessionCookieBecomesMetadata(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	cookie := http.Header{"Cookie": {cookieName + "=" + testSession}, "X-Keymint-Csrf": {"1"}}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/api/user/tokens"},
		{http.MethodGet, "/v1/tokens"},
		{http.MethodGet, "/api-tokens"},
		{http.MethodDelete, "/api/user/tokens/9f0c2b8e-4d3c-4a4e-9a57-0d6f1f5b2c11"},
		{http.MethodPost, "/api/user/tokens"},
	} {
		resp, body := send(t, r.method, g.url+r.path, "", cookie)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s = %d %s", r.method, r.path, resp.StatusCode, body)
		}
		md := g.tokens.lastCall(t).md
		if got := md.Get(authn.HeaderSession); !slices.Equal(got, []string{testSession}) {
			t.Errorf("%s %s: x-keymint-session = %q", r.method, r.path, got)
		}
	}
	resp, body := send(t, http.MethodGet, g.url+"/v1/user", "", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/user = %d %s", resp.StatusCode, body)
	}

	// Smuggled as headers, the session never reaches the server.
	smuggle := http.Header{
		"X-Keymint-Session":               {testSession},
		"Grpc-Metadata-X-Keymint-Session": {testSession},
		"Grpcgateway-X-Keymint-Session":   {testSession},
	}
	for _, path := range []string{"/api/user/tokens", "/v1/tokens", "/api-tokens", "/v1/user"} {
		resp, body := send(t, http.MethodGet, g.url+path, "", smuggle)
		wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
	}
	g.tokens.mu.Lock()
	seen := slices.Clone(g.tokens.calls)
	g.tokens.mu.Unlock()
	for _, c := range append(seen, g.accounts.callsOf("GetCurrentUser")...) {
		if c.md.Get(authn.HeaderSession) != nil && c.md.Get(authn.HeaderSession)[0] != testSession {
			t.Errorf("%s got a session that was not the cookie's", c.method)
		}
	}

	// Explicit credentials win, and the cookie is not forwarded with them.
	h := http.Header{"Cookie": {cookieName + "=" + testSession}, "Authorization": {"Bearer " + testToken}}
	resp, body = send(t, http.MethodGet, g.url+"/api/user/tokens", "", h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Bearer + cookie = %d %s", resp.StatusCode, body)
	}
	if md := g.tokens.lastCall(t).md; md.Get(authn.HeaderSession) != nil {
		t.Errorf("the cookie rode along with a Bearer token")
	}
}

// TestCSRFRefusedBeforeAnyCall: a cookie-authenticated state change without
// proof of coming from keymint's page is a 403 and reaches no server.
func TestCSRFRefusedBeforeAnyCall(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	cookie := cookieName + "=" + testSession
	for _, c := range []struct {
		method, path string
		header       http.Header
	}{
		{http.MethodPost, "/api/user/tokens", http.Header{"Cookie": {cookie}}},
		{http.MethodPost, "/api/user/tokens", http.Header{"Cookie": {cookie}, "Content-Type": {"text/plain"}}},
		{http.MethodPost, "/api/user/tokens", http.Header{"Cookie": {cookie}, "Content-Type": {"multipart/form-data; boundary=x"}}},
		{http.MethodPost, "/api/user/tokens", http.Header{"Cookie": {cookie}, "Content-Type": {"application/json"}, "Sec-Fetch-Site": {"cross-site"}}},
		{http.MethodPost, "/api/user/tokens", http.Header{"Cookie": {cookie}, "X-Keymint-Csrf": {"1"}, "Origin": {"https://evil.example"}}},
		{http.MethodDelete, "/api/user/tokens/x", http.Header{"Cookie": {cookie}}},
		{http.MethodDelete, "/v1/tokens/x", http.Header{"Cookie": {cookie}}},
		{http.MethodPost, "/v1/tokens", http.Header{"Cookie": {cookie}, "Content-Type": {"application/x-www-form-urlencoded"}}},
		{http.MethodPut, "/v1/user/password", http.Header{"Cookie": {cookie}, "Content-Type": {"text/plain"}}},
		{http.MethodPost, "/api-tokens", http.Header{"Cookie": {cookie}}},
		{http.MethodPost, "/api/auth/logout", http.Header{"Cookie": {cookie}}},
	} {
		resp, body := send(t, c.method, g.url+c.path, "{}", c.header)
		sb := wantStatusJSON(t, resp, body, http.StatusForbidden, 7)
		if !strings.HasPrefix(sb.Message, "cross-site request refused") {
			t.Errorf("%s %s: message %q", c.method, c.path, sb.Message)
		}
	}
	if n := g.tokens.callCount() + len(g.accounts.callsOf("Login")) + len(g.accounts.callsOf("Logout")); n != 0 {
		t.Errorf("refused requests made %d gRPC calls", n)
	}
	// Reads need no proof; a request without the cookie needs none either
	// (its credentials, if any, are headers no other site can send).
	resp, body := send(t, http.MethodGet, g.url+"/api/user/tokens", "", http.Header{"Cookie": {cookie}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with cookie = %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, http.MethodDelete, g.url+"/api/user/tokens/"+testToken, "", http.Header{"Authorization": {"Bearer " + testToken}})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE with Bearer = %d %s", resp.StatusCode, body)
	}
}

func TestSemaphoreTokenRoutes(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	bearer := jsonHeaders("Authorization", "Bearer "+testToken)

	// List: every page, Semaphore's keys plus name and hint, no secret.
	resp, body := send(t, http.MethodGet, g.url+"/api/user/tokens", "", bearer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list = %d %s", resp.StatusCode, body)
	}
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil || len(list) != 3 {
		t.Fatalf("list = %s", body)
	}
	wantKeys := []string{"created", "expired", "hint", "id", "name", "user_id"}
	for _, item := range list {
		if got := sortedKeys(item); !slices.Equal(got, wantKeys) {
			t.Errorf("list item keys = %v, want %v", got, wantKeys)
		}
	}
	if list[0]["id"] != "tok-1" || list[0]["expired"] != false || list[0]["created"] != "2018-11-01T12:09:27Z" ||
		list[0]["user_id"] != "user-1" || list[1]["expired"] != true || list[2]["expired"] != true {
		t.Errorf("list = %s", body)
	}
	if req := g.tokens.lastCall(t).req.(*keymintv1.ListTokensRequest); !req.GetShowInactive() {
		t.Error("list hides revoked and expired tokens; Semaphore lists them as expired")
	}

	// Create with no body, as the seed does: 201, the secret as id.
	resp, body = send(t, http.MethodPost, g.url+"/api/user/tokens", "", bearer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", resp.StatusCode, body)
	}
	var created map[string]any
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if created["id"] != testSecret || created["token_id"] != "tok-1" || created["expired"] != false {
		t.Errorf("create = %s", body)
	}
	req := g.tokens.lastCall(t).req.(*keymintv1.CreateTokenRequest)
	if !strings.HasPrefix(req.GetName(), "semaphore token ") || req.GetTtl() != nil || req.GetExpireTime() != nil {
		t.Errorf("default CreateTokenRequest = %v", req)
	}

	// Create with a body.
	resp, body = send(t, http.MethodPost, g.url+"/api/user/tokens",
		`{"name":"ci","description":"d","scopes":["a:b"],"ttl":"720h","color":"ignored"}`, bearer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create with body = %d %s", resp.StatusCode, body)
	}
	req = g.tokens.lastCall(t).req.(*keymintv1.CreateTokenRequest)
	if req.GetName() != "ci" || req.GetDescription() != "d" || !slices.Equal(req.GetScopes(), []string{"a:b"}) ||
		req.GetTtl().AsDuration() != 720*time.Hour {
		t.Errorf("CreateTokenRequest = %v", req)
	}
	resp, _ = send(t, http.MethodPost, g.url+"/api/user/tokens", `{"expire_time":"2030-01-02T03:04:05Z"}`, bearer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create with expire_time = %d", resp.StatusCode)
	}
	if at := g.tokens.lastCall(t).req.(*keymintv1.CreateTokenRequest).GetExpireTime().AsTime(); !at.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("expire_time sent as %v", at)
	}
	before := g.tokens.callCount()
	for _, bad := range []string{`{"ttl":"a month"}`, `{"expire_time":"tomorrow"}`, `{"name":`, `{"scopes":"a"}`} {
		resp, body := send(t, http.MethodPost, g.url+"/api/user/tokens", bad, bearer)
		wantStatusJSON(t, resp, body, http.StatusBadRequest, 3)
	}
	if g.tokens.callCount() != before {
		t.Error("bad bodies reached the server")
	}

	// Delete by id and by secret.
	for _, c := range []struct{ path, id, token string }{
		{"9f0c2b8e-4d3c-4a4e-9a57-0d6f1f5b2c11", "9f0c2b8e-4d3c-4a4e-9a57-0d6f1f5b2c11", ""},
		{testSecret, "", testSecret},
	} {
		resp, body := send(t, http.MethodDelete, g.url+"/api/user/tokens/"+c.path, "", bearer)
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("DELETE %s = %d %s", c.path, resp.StatusCode, body)
		}
		req := g.tokens.lastCall(t).req.(*keymintv1.RevokeTokenRequest)
		if req.GetId() != c.id || req.GetToken() != c.token {
			t.Errorf("DELETE %s sent %v", c.path, req)
		}
	}

	// Unauthenticated is JSON, with WWW-Authenticate.
	resp, body = send(t, http.MethodGet, g.url+"/api/user/tokens", "", jsonHeaders())
	wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
}

func TestSemaphoreLogout(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	for _, c := range []struct {
		name   string
		cookie string
		calls  int
	}{
		{"signed in", testSession, 1},
		{"stale session", "c3RhbGUtc2Vzc2lvbi1zZWNyZXQtb2YtdGhlLWZha2Ut", 1},
		{"no cookie", "", 0},
	} {
		before := len(g.accounts.callsOf("Logout"))
		h := jsonHeaders()
		if c.cookie != "" {
			h.Set("Cookie", cookieName+"="+c.cookie)
		}
		resp, body := send(t, http.MethodPost, g.url+"/api/auth/logout", "", h)
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("%s: logout = %d %s", c.name, resp.StatusCode, body)
		}
		ck := cookieNamed(resp, cookieName)
		if ck == nil || ck.MaxAge >= 0 || ck.Value != "" || !ck.HttpOnly {
			t.Errorf("%s: logout cookie = %+v", c.name, ck)
		}
		if n := len(g.accounts.callsOf("Logout")) - before; n != c.calls {
			t.Errorf("%s: %d Logout calls, want %d", c.name, n, c.calls)
		}
	}
	resp, body := send(t, http.MethodGet, g.url+"/api/auth/logout", "", nil)
	wantStatusJSON(t, resp, body, http.StatusMethodNotAllowed, 12)
}

// A browser that signs in again ends the session it had (one Logout with
// the old session), and one that had none ends nothing. Kills
// semaphore.go:156:42 negated on 7eede42 (the old session left alive, and
// a Logout sent for no session).
func TestSignInAgainEndsTheOldSession(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	login := `{"auth": "` + testEmail + `", "password": "` + testPassword + `"}`
	for _, c := range []struct {
		name, cookie string
		ended        []string
	}{
		{"first sign-in", "", nil},
		{"again", testSession, []string{testSession}},
	} {
		before := len(g.accounts.callsOf("Logout"))
		h := jsonHeaders()
		if c.cookie != "" {
			h.Set("Cookie", cookieName+"="+c.cookie)
		}
		resp, body := send(t, http.MethodPost, g.url+"/api/auth/login", login, h)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: login = %d %s", c.name, resp.StatusCode, body)
		}
		var ended []string
		for _, call := range g.accounts.callsOf("Logout")[before:] {
			ended = append(ended, call.md.Get(authn.HeaderSession)...)
		}
		if !slices.Equal(ended, c.ended) {
			t.Errorf("%s: sessions ended %q, want %q", c.name, ended, c.ended)
		}
	}
}

// Sign-out is best effort: a session the server cannot end (its store
// down) is logged as a warning with the code, never the session; one that
// is already over (Unauthenticated) or ends is not. The cookie is cleared
// in every case. Kills semaphore.go:181:9 and :181:36 negated on 7eede42
// (the warning on success, or on an ended session, instead of the failure).
func TestSignOutFailureLogged(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	g := newSemGateway(t, false, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	for _, c := range []struct {
		name, cookie string
		warned       bool
	}{
		{"signed in", testSession, false},
		{"stale session", "c3RhbGUtc2Vzc2lvbi1zZWNyZXQtb2YtdGhlLWZha2Ut", false},
		{"store down", unendingSession, true},
	} {
		before := len(logLines(t, logs.String(), "sign-out failed"))
		h := jsonHeaders()
		h.Set("Cookie", cookieName+"="+c.cookie)
		resp, body := send(t, http.MethodPost, g.url+"/api/auth/logout", "", h)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: logout = %d %s", c.name, resp.StatusCode, body)
		}
		if ck := cookieNamed(resp, cookieName); ck == nil || ck.MaxAge >= 0 {
			t.Errorf("%s: cookie not cleared: %+v", c.name, ck)
		}
		lines := logLines(t, logs.String(), "sign-out failed")[before:]
		if !c.warned {
			if len(lines) != 0 {
				t.Errorf("%s: logged %v", c.name, lines)
			}
			continue
		}
		if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["code"] != "Unavailable" {
			t.Errorf("%s: logged %v, want one WARN with code Unavailable", c.name, lines)
		}
	}
	if strings.Contains(logs.String(), unendingSession) {
		t.Errorf("the log holds a session secret:\n%s", logs)
	}
}

// TestUnauthenticatedSessionClearsCookie: a dead session is dropped from the
// browser by the answer that refuses it.
func TestUnauthenticatedSessionClearsCookie(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	h := http.Header{"Cookie": {cookieName + "=c3RhbGUtc2Vzc2lvbi1zZWNyZXQtb2YtdGhlLWZha2Ut"}}
	for _, path := range []string{"/v1/user", "/api/user/tokens"} {
		resp, body := send(t, http.MethodGet, g.url+path, "", h)
		wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
		if ck := cookieNamed(resp, cookieName); ck == nil || ck.MaxAge >= 0 {
			t.Errorf("GET %s: 401 left the cookie: %v", path, resp.Header["Set-Cookie"])
		}
	}
}

// TestSecureCookieOverTLS: over TLS (or with SecureCookies) the cookie is
// Secure and __Host- prefixed, and the plain name is not read.
func TestSecureCookieOverTLS(t *testing.T) {
	t.Parallel()
	tlsGW := newSemGateway(t, true, nil)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(url string, h http.Header) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"auth":"`+testEmail+`","password":"`+testPassword+`"}`))
		req.Header = h
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post(tlsGW.url+"/api/auth/login", jsonHeaders())
	if c := cookieNamed(resp, secureCookieName); c == nil || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Fatalf("TLS sign-in cookies: %v", resp.Header["Set-Cookie"])
	}
	if cookieNamed(resp, cookieName) != nil {
		t.Fatal("TLS sign-in also set the plain cookie")
	}

	plain := newSemGateway(t, false, func(c *Config) { c.SecureCookies = true })
	resp, _ = send(t, http.MethodPost, plain.url+"/api/auth/login", `{"auth":"`+testEmail+`","password":"`+testPassword+`"}`, jsonHeaders())
	if c := cookieNamed(resp, secureCookieName); c == nil || !c.Secure {
		t.Fatalf("SecureCookies sign-in cookies: %v", resp.Header["Set-Cookie"])
	}
	// A plain-named cookie (plantable over HTTP) is ignored.
	resp, body := send(t, http.MethodGet, plain.url+"/v1/user", "", http.Header{"Cookie": {cookieName + "=" + testSession}})
	wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
	resp, body = send(t, http.MethodGet, plain.url+"/v1/user", "", http.Header{"Cookie": {secureCookieName + "=" + testSession}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("__Host- cookie refused: %d %s", resp.StatusCode, body)
	}
}

// TestPageAndSecurityHeaders: the page and its files come from the binary
// with a strict CSP; every answer forbids framing and referrers; nothing
// answers with CORS headers.
func TestPageAndSecurityHeaders(t *testing.T) {
	t.Parallel()
	g := newSemGateway(t, false, nil)
	for _, c := range []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<script src="/ui/app.js" defer></script>`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "X-Keymint-CSRF"},
		{"/ui/style.css", "text/css; charset=utf-8", "@media"},
	} {
		resp, body := send(t, http.MethodGet, g.url+c.path, "", http.Header{"Origin": {"https://evil.example"}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != c.contentType || !strings.Contains(string(body), c.contains) {
			t.Fatalf("GET %s = %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", c.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows inline code: %q", c.path, csp)
		}
	}
	// No inline script or style in the page: the CSP would block it.
	_, page := send(t, http.MethodGet, g.url+"/", "", nil)
	for _, inline := range []string{"<script>", " onclick=", " onload=", "<style", " style="} {
		if strings.Contains(string(page), inline) {
			t.Errorf("page has inline %q", inline)
		}
	}
	for _, path := range []string{"/", "/v1/tokens", "/api/user/tokens", "/healthz", "/nope"} {
		resp, _ := send(t, http.MethodGet, g.url+path, "", http.Header{"Origin": {"https://evil.example"}})
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: security headers %v", path, resp.Header)
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("GET %s answers %s", path, k)
			}
		}
	}
}

package sidecar

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc/codes"
)

// tableValidator answers from a fixed table: the adapters' own logic is
// under test here; the real TokenService is tested end to end elsewhere.
type tableValidator map[string]*keymintv1.ValidateTokenResponse

func (v tableValidator) ValidateToken(_ context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	if req.Token == "broken" {
		return nil, errors.New("central keymint unreachable")
	}
	r, ok := v[req.Token]
	if !ok {
		return &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_NOT_FOUND}, nil
	}
	for _, s := range req.RequiredScopes {
		if !slices.Contains(r.Scopes, s) {
			return &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE}, nil
		}
	}
	return r, nil
}

func testConfig(t testing.TB) Config {
	rs, err := NewRules([]Rule{{Method: "GET", PathPrefix: "/reports", Scopes: []string{"reports:read"}}})
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Validator: tableValidator{
			"good":    {Valid: true, TokenId: "t1", UserId: "u1", OrganizationId: "o1", Scopes: []string{"reports:read", "x"}},
			"noscope": {Valid: true, TokenId: "t2", UserId: "u2", OrganizationId: "o1"},
		},
		Rules:              rs,
		StripAuthorization: true,
	}
}

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	h := NewForwardAuth(testConfig(t))
	cases := []struct {
		name, auth, uri string
		want            int
	}{
		{"none", "", "/reports", 401},
		{"good bearer", "Bearer good", "/reports", 200},
		{"good raw", "good", "/reports/1", 200},
		{"unknown", "Bearer nope", "/", 401},
		{"no scope", "Bearer noscope", "/reports", 403},
		{"no scope elsewhere", "Bearer noscope", "/other", 200},
		{"unreachable", "Bearer broken", "/", 503},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", ForwardAuthPath, nil)
		r.Header.Set("X-Original-URI", c.uri)
		r.Header.Set("X-Keymint-User-Id", "spoofed")
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, w.Code, c.want)
		}
		if c.want == 200 && w.Header().Get("X-Keymint-User-Id") == "spoofed" {
			t.Errorf("%s: spoofed identity passed", c.name)
		}
		if c.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
		if c.want != 200 && w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: deny without JSON body", c.name)
		}
	}
	// On allow every identity header is answered, empty when unset, so a
	// proxy copying them overwrites a client's copies.
	r := httptest.NewRequest("GET", ForwardAuthPath, nil)
	r.Header.Set("X-Original-URI", "/other")
	r.Header.Set("Authorization", "Bearer noscope")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	for _, name := range IdentityHeaders {
		if _, ok := w.Header()[http.CanonicalHeaderKey(name)]; !ok {
			t.Errorf("allow without %s", name)
		}
	}
	if w.Header().Get(HeaderScopes) != "" || w.Header().Get(HeaderExternalID) != "" || w.Header().Get(HeaderUserID) != "u2" {
		t.Errorf("allow headers %v", w.Header())
	}
	// A deny carries its JSON in X-Keymint-Reason too (nginx drops the body).
	r = httptest.NewRequest("GET", ForwardAuthPath, nil)
	r.Header.Set("X-Original-URI", "/reports")
	r.Header.Set("Authorization", "Bearer noscope")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 || w.Header().Get(HeaderReason) != strings.TrimSpace(w.Body.String()) || !strings.Contains(w.Body.String(), `"insufficient_scope"`) {
		t.Errorf("deny: %d %q, reason header %q", w.Code, w.Body, w.Header().Get(HeaderReason))
	}
	// A path keymint refuses to match is refused before the token is looked at.
	r = httptest.NewRequest("GET", ForwardAuthPath, nil)
	r.Header.Set("X-Original-URI", "/reports%00")
	r.Header.Set("Authorization", "Bearer good")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_path") {
		t.Errorf("bad path: %d %s", w.Code, w.Body)
	}
}

// TestForwardAuthStyles: which headers describe the original request is
// configuration; a header of another proxy, which a client can send through
// any proxy that does not set it, is never believed.
func TestForwardAuthStyles(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	type hdrs map[string]string
	cases := []struct {
		name  string
		style Style
		h     hdrs
		want  int
	}{
		// noscope may not GET /reports; anything else it may.
		{"nginx", StyleNginx, hdrs{"X-Original-URI": "/reports"}, 403},
		{"nginx method", StyleNginx, hdrs{"X-Original-URI": "/reports", "X-Original-Method": "POST"}, 200},
		{"nginx HEAD", StyleNginx, hdrs{"X-Original-URI": "/reports", "X-Original-Method": "HEAD"}, 403},
		// The bypass: nginx sets X-Original-URI only, the client adds Traefik's.
		{"nginx ignores Traefik's uri", StyleNginx, hdrs{"X-Original-URI": "/reports", "X-Forwarded-Uri": "/public"}, 403},
		{"nginx ignores Traefik's method", StyleNginx, hdrs{"X-Original-URI": "/reports", "X-Forwarded-Method": "POST"}, 403},
		{"nginx without its uri", StyleNginx, hdrs{"X-Forwarded-Uri": "/public"}, 400},
		{"nginx repeated uri", StyleNginx, hdrs{"X-Original-URI": "/reports", "x-original-uri": "/public"}, 400},
		{"traefik", StyleTraefik, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "GET"}, 403},
		{"traefik POST", StyleTraefik, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "POST"}, 200},
		{"traefik ignores nginx's", StyleTraefik, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "GET", "X-Original-URI": "/public", "X-Original-Method": "POST"}, 403},
		{"traefik without its uri", StyleTraefik, hdrs{"X-Original-URI": "/public"}, 400},
		{"caddy", StyleCaddy, hdrs{"X-Forwarded-Uri": "/reports;x", "X-Forwarded-Method": "HEAD"}, 403},
		{"auto nginx", StyleAuto, hdrs{"X-Original-URI": "/reports", "X-Original-Method": "GET"}, 403},
		{"auto traefik", StyleAuto, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "GET"}, 403},
		{"auto traefik POST", StyleAuto, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "POST"}, 200},
		{"auto both agree", StyleAuto, hdrs{"X-Original-URI": "/reports", "X-Original-Method": "POST", "X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "POST"}, 200},
		{"auto uri disagrees", StyleAuto, hdrs{"X-Original-URI": "/reports", "X-Forwarded-Uri": "/public"}, 400},
		{"auto method disagrees", StyleAuto, hdrs{"X-Original-URI": "/reports", "X-Forwarded-Method": "POST"}, 400},
		{"auto client's nginx method under traefik", StyleAuto, hdrs{"X-Forwarded-Uri": "/reports", "X-Forwarded-Method": "GET", "X-Original-Method": "POST"}, 400},
		{"auto nothing", StyleAuto, hdrs{}, 400},
		{"zero style is auto", "", hdrs{"X-Original-URI": "/reports", "X-Forwarded-Uri": "/public"}, 400},
	}
	for _, c := range cases {
		cfg.Style = c.style
		h := NewForwardAuth(cfg)
		r := httptest.NewRequest("GET", ForwardAuthPath, nil)
		for k, v := range c.h {
			r.Header.Add(k, v)
		}
		r.Header.Set("Authorization", "Bearer noscope")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, w.Code, c.want, w.Body)
		}
	}
	for in, want := range map[string]Style{"": StyleAuto, "auto": StyleAuto, "nginx": StyleNginx, "traefik": StyleTraefik, "caddy": StyleCaddy} {
		if got, err := ParseStyle(in); err != nil || got != want {
			t.Errorf("ParseStyle(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseStyle("envoy"); err == nil {
		t.Error("ParseStyle accepted envoy")
	}
}

func TestExtAuthzCheck(t *testing.T) {
	t.Parallel()
	s := NewAuthzServer(testConfig(t))
	check := func(auth, path string) *authv3.CheckResponse {
		headers := map[string]string{"x-keymint-user-id": "spoofed"}
		if auth != "" {
			headers["authorization"] = auth
		}
		resp, err := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: headers}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ok := check("Bearer good", "/reports")
	if codes.Code(ok.Status.Code) != codes.OK {
		t.Fatalf("good token denied: %v", ok)
	}
	got := map[string]string{}
	for _, h := range ok.GetOkResponse().Headers {
		if h.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Fatalf("header %s would append", h.Header.Key)
		}
		got[h.Header.Key] = h.Header.Value
	}
	if got[HeaderUserID] != "u1" || got[HeaderScopes] != "reports:read x" || !slices.Contains(ok.GetOkResponse().HeadersToRemove, "authorization") {
		t.Fatalf("ok response %v", ok.GetOkResponse())
	}
	empty := check("Bearer noscope", "/other")
	if !slices.Contains(empty.GetOkResponse().HeadersToRemove, HeaderScopes) {
		t.Fatal("empty scopes header not removed, a client copy would pass")
	}
	for _, c := range []struct {
		auth string
		code codes.Code
		http int
	}{
		{"", codes.Unauthenticated, 401},
		{"Bearer nope", codes.Unauthenticated, 401},
		{"Bearer noscope", codes.PermissionDenied, 403},
		{"Bearer broken", codes.Unavailable, 503},
	} {
		r := check(c.auth, "/reports")
		d := r.GetDeniedResponse()
		if codes.Code(r.Status.Code) != c.code || d == nil || int(d.Status.Code) != c.http || d.Body == "" {
			t.Errorf("auth %q: %v", c.auth, r)
		}
	}
	if r := check("Bearer good", "/reports%00.json"); codes.Code(r.Status.Code) != codes.InvalidArgument || r.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Errorf("bad path: %v", r)
	}
	// header_map form (Envoy's encode_raw_headers).
	resp, _ := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer good")}}}}},
	}})
	if codes.Code(resp.Status.Code) != codes.OK {
		t.Fatalf("raw header form denied: %v", resp)
	}
}

// The constant canonical keys forward-auth writes must be what net/http
// would make of the identity header names (that each has one is
// TestCanonicalKeyAllocatesNothing's).
func TestCanonicalIdentityKeys(t *testing.T) {
	t.Parallel()
	for _, k := range append(slices.Clone(IdentityHeaders), "x-other") {
		if got, want := canonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
}

// original reads the proxies' headers by canonical key: a request whose
// header names arrive in any case (net/http canonicalises them) is read.
func TestForwardAuthHeaderCase(t *testing.T) {
	t.Parallel()
	h := NewForwardAuth(testConfig(t))
	r := httptest.NewRequest(http.MethodGet, ForwardAuthPath, nil)
	for k, v := range map[string]string{"authorization": "Bearer good", "x-original-uri": "/reports", "X-ORIGINAL-METHOD": "GET"} {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Header().Get(HeaderTokenID) != "t1" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
}

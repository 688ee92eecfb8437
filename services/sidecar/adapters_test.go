package sidecar

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
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

func testConfig(t *testing.T) Config {
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
	// Traefik's headers pick the method: POST /reports needs no scope here.
	r := httptest.NewRequest("GET", ForwardAuthPath, nil)
	r.Header.Set("X-Forwarded-Method", "POST")
	r.Header.Set("X-Forwarded-Uri", "/reports")
	r.Header.Set("Authorization", "Bearer noscope")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("Traefik POST /reports = %d", w.Code)
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
	// header_map form (Envoy's encode_raw_headers).
	resp, _ := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer good")}}}}},
	}})
	if codes.Code(resp.Status.Code) != codes.OK {
		t.Fatalf("raw header form denied: %v", resp)
	}
}

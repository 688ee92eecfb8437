package sidecar

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Denials carry the headers the README promises, through ext_authz and
// forward-auth alike: WWW-Authenticate with a 401 (invalid_token) and a 403
// (insufficient_scope), none with a 429, 400 or 503; Retry-After, in whole
// seconds rounded up, with a 429 and with nothing else.
//
// Mutations (gremlins survivors): services/sidecar/extauthz.go Check's
// `c != ""` (WWW-Authenticate) and `d.retryAfter != ""` (Retry-After)
// negated: the header is dropped where it belongs and sent empty elsewhere.
func TestDenyHeadersOnBothAdapters(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	v := tableValidator{}
	for k, r := range cfg.Validator.(tableValidator) {
		v[k] = r
	}
	v["limited"] = &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED,
		RetryAfter: durationpb.New(1200 * time.Millisecond)}
	v["elsewhere"] = &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED}
	cfg.Validator = v
	authz, fwd := NewAuthzServer(cfg), NewForwardAuth(cfg)
	const (
		invalid = `Bearer realm="keymint", error="invalid_token"`
		scope   = `Bearer realm="keymint", error="insufficient_scope"`
	)
	for _, c := range []struct {
		auth, path    string
		status        int
		code          codes.Code
		www, retryAft string
	}{
		{"", "/reports", 401, codes.Unauthenticated, invalid, ""},
		{"Bearer nope", "/reports", 401, codes.Unauthenticated, invalid, ""},
		{"Bearer noscope", "/reports", 403, codes.PermissionDenied, scope, ""},
		{"Bearer elsewhere", "/other", 403, codes.PermissionDenied, scope, ""},
		{"Bearer limited", "/other", 429, codes.ResourceExhausted, "", "2"},
		{"Bearer broken", "/reports", 503, codes.Unavailable, "", ""},
		{"Bearer good", "/reports%00", 400, codes.InvalidArgument, "", ""},
	} {
		// ext_authz: the denied response's headers, by name.
		resp, err := authz.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: c.path, Headers: map[string]string{"authorization": c.auth}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		d := resp.GetDeniedResponse()
		if codes.Code(resp.GetStatus().GetCode()) != c.code || int(d.GetStatus().GetCode()) != c.status {
			t.Errorf("ext_authz %q %s: %v, want %d %v", c.auth, c.path, resp, c.status, c.code)
			continue
		}
		hs := map[string][]string{}
		for _, h := range d.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("ext_authz %q: header %s would append", c.auth, h.GetHeader().GetKey())
			}
			hs[h.GetHeader().GetKey()] = append(hs[h.GetHeader().GetKey()], h.GetHeader().GetValue())
		}
		checkOne(t, "ext_authz "+c.auth, "www-authenticate", hs["www-authenticate"], c.www)
		checkOne(t, "ext_authz "+c.auth, "retry-after", hs["retry-after"], c.retryAft)
		checkOne(t, "ext_authz "+c.auth, "content-type", hs["content-type"], "application/json")

		// forward-auth: the response's headers.
		r := httptest.NewRequest("GET", ForwardAuthPath, nil)
		r.Header.Set("X-Original-URI", c.path)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		fwd.ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("forward-auth %q %s: status %d, want %d", c.auth, c.path, w.Code, c.status)
			continue
		}
		checkOne(t, "forward-auth "+c.auth, "WWW-Authenticate", w.Header().Values("WWW-Authenticate"), c.www)
		checkOne(t, "forward-auth "+c.auth, "Retry-After", w.Header().Values("Retry-After"), c.retryAft)
	}
}

// checkOne wants exactly one value want of header name, or none for "".
func checkOne(t *testing.T, who, name string, got []string, want string) {
	t.Helper()
	switch {
	case want == "" && len(got) != 0:
		t.Errorf("%s: %s %q, want none", who, name, got)
	case want != "" && (len(got) != 1 || got[0] != want):
		t.Errorf("%s: %s %q, want %q", who, name, got, want)
	}
}

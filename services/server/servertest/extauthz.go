package servertest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// ExtAuthzTokens are the tokens of the four ext_authz cases, minted on a
// server whose route rule is GET /reports → reports:read: Good holds the
// scope, NoScope does not, Revoked is revoked; the fourth case is no token.
type ExtAuthzTokens struct {
	UserID, Good, GoodID, NoScope, Revoked string
}

// CheckExtAuthz runs the four ext_authz cases against any Authorization
// server (keymint's gRPC port, a sidecar): the good token passes with the
// caller's identity headers (a spoofed one replaced), the others are
// denied with their status and a JSON error body.
func CheckExtAuthz(t testing.TB, client authv3.AuthorizationClient, tok ExtAuthzTokens) {
	t.Helper()
	check := func(token, path string) *authv3.CheckResponse {
		h := map[string]string{"x-keymint-user-id": "spoofed"}
		if token != "" {
			h["authorization"] = "Bearer " + token
		}
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: h}},
		}})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	ok := check(tok.Good, "/reports?x=1")
	if codes.Code(ok.GetStatus().GetCode()) != codes.OK || ok.GetOkResponse() == nil {
		t.Fatalf("good token: %v", ok)
	}
	ids := map[string]string{}
	for _, h := range ok.GetOkResponse().GetHeaders() {
		ids[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if ids["x-keymint-user-id"] != tok.UserID || ids["x-keymint-token-id"] != tok.GoodID {
		t.Fatalf("ok_response headers %v", ids)
	}
	for _, c := range []struct {
		name, token string
		status      int32
	}{{"none", "", 401}, {"revoked", tok.Revoked, 401}, {"no scope", tok.NoScope, 403}} {
		r := check(c.token, "/reports")
		d := r.GetDeniedResponse()
		if d == nil || int32(d.GetStatus().GetCode()) != c.status {
			t.Fatalf("%s: %v, want denied %d", c.name, r, c.status)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body["error"] == "" {
			t.Fatalf("%s: deny body %q", c.name, d.GetBody())
		}
	}
}

// RemovesAuthorization reports whether an allowed ext_authz Check with token
// tells Envoy to remove the authorization header before the upstream.
func RemovesAuthorization(t testing.TB, c authv3.AuthorizationClient, token string) bool {
	t.Helper()
	resp, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			Headers: map[string]string{"authorization": "Bearer " + token}}},
	}})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check with a good token: %v, %v", resp, err)
	}
	return slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization")
}

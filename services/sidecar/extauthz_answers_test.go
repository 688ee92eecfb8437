package sidecar

import (
	"context"
	"fmt"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/recent"
)

// funcValidator answers with f.
type funcValidator func(req *keymintv1.ValidateTokenRequest) *keymintv1.ValidateTokenResponse

func (f funcValidator) ValidateToken(_ context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	return f(req), nil
}

func checkFor(t *testing.T, s *AuthzServer, token string) map[string]string {
	t.Helper()
	resp, err := s.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"authorization": "Bearer " + token}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("%s denied: %v", token, resp)
	}
	h := map[string]string{}
	for _, o := range ok.GetHeaders() {
		h[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	for _, k := range ok.GetHeadersToRemove() {
		h[k] = "(removed)"
	}
	return h
}

// A remembered allow answer is answered again only for the same identity:
// a token whose scopes changed gets a new one, and tokens sharing a slot
// (more tokens than slots, concurrently) each get their own. Mutation:
// allowed answering a slot's answer without comparing identity answers
// another token's id.
func TestCheckAnswersFollowTheIdentity(t *testing.T) {
	t.Parallel()
	rs, err := NewRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	scopes := []string{"a"}
	s := NewAuthzServer(Config{Rules: rs, Validator: funcValidator(func(req *keymintv1.ValidateTokenRequest) *keymintv1.ValidateTokenResponse {
		mu.Lock()
		defer mu.Unlock()
		return &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "id-" + req.Token, UserId: "u", OrganizationId: "o", Scopes: scopes}
	})})
	if h := checkFor(t, s, "one"); h[HeaderScopes] != "a" || h[HeaderExternalID] != "(removed)" {
		t.Fatalf("first answer %v", h)
	}
	mu.Lock()
	scopes = []string{"a", "b"}
	mu.Unlock()
	if h := checkFor(t, s, "one"); h[HeaderScopes] != "a b" {
		t.Fatalf("after the scopes changed: %v", h)
	}
	mu.Lock()
	scopes = nil
	mu.Unlock()
	if h := checkFor(t, s, "one"); h[HeaderScopes] != "(removed)" {
		t.Fatalf("after the scopes went: %v", h)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 3 * recent.Size {
				tok := fmt.Sprintf("t%d-%d", w, i%(recent.Size+7))
				if h := checkFor(t, s, tok); h[HeaderTokenID] != "id-"+tok {
					t.Errorf("token %s answered %v", tok, h)
					return
				}
			}
		})
	}
	wg.Wait()
}

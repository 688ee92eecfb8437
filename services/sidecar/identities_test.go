package sidecar

import (
	"net/http/httptest"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// The identity headers of an answer seen before are the kept ones; a new
// answer of the same identity finds them too, and one whose identity
// changed gets its own. Mutation: of answering the kept headers for a
// token id alone (no pointer or content check) keeps "a b" after the
// scopes changed.
func TestIdentitiesFollowTheAnswer(t *testing.T) {
	t.Parallel()
	ids := newIdentities()
	resp := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", UserId: "u1", Scopes: []string{"a", "b"}}
	first := ids.of(resp)
	if first[3] != [2]string{HeaderScopes, "a b"} || first[1] != [2]string{HeaderUserID, "u1"} {
		t.Fatalf("headers %v", *first)
	}
	if ids.of(resp) != first {
		t.Error("the same answer again: new headers")
	}
	if ids.of(&keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", UserId: "u1", Scopes: []string{"a", "b"}}) != first {
		t.Error("a new answer of the same identity: new headers")
	}
	changed := ids.of(&keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", UserId: "u1", Scopes: []string{"a"}})
	if changed[3][1] != "a" {
		t.Errorf("after the scopes changed: %v", *changed)
	}
	if other := ids.of(&keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t2", UserId: "u2"}); other[0][1] != "t2" || other[1][1] != "u2" {
		t.Errorf("another token: %v", *other)
	}
	if first[3][1] != "a b" {
		t.Error("kept headers written to")
	}
}

// Forward-auth's identity header values are slices of the kept headers,
// shared by every allow of the identity: a header added to one answer
// (by a middleware, say) must not reach the kept values or the next
// answer. Mutation: the kept values as one array sliced vals[i:] (room
// past the value) lets Add write over the next header's kept value.
func TestForwardAuthSharedValuesStayUnwritten(t *testing.T) {
	t.Parallel()
	h := NewForwardAuth(testConfig(t))
	allow := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", ForwardAuthPath, nil)
		r.Header.Set("X-Original-URI", "/reports")
		r.Header.Set("Authorization", "Bearer good")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		return w
	}
	first := allow()
	for _, name := range IdentityHeaders {
		first.Header().Add(name, "added")
	}
	second := allow()
	for _, name := range IdentityHeaders {
		if v := second.Header().Values(name); len(v) != 1 || v[0] == "added" {
			t.Errorf("%s on the next allow: %q", name, v)
		}
	}
	if got := second.Header().Get(HeaderScopes); got != "reports:read x" {
		t.Errorf("scopes %q", got)
	}
}

package sidecar

import (
	"encoding/json"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The forward-auth identity body's exp is the expiry as a NumericDate, and
// is left out for a token that never expires (README, "Forward-auth
// identity body").
//
// Mutation (not covered by the package's tests before): services/sidecar/
// identitybody.go `t != nil` negated: exp never set (or a nil expiry read).
func TestIdentityBodyExp(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, c := range []struct {
		expire *timestamppb.Timestamp
		want   any
	}{
		{timestamppb.New(exp), float64(exp.Unix())},
		{nil, nil},
	} {
		b := identityBody(&keymintv1.ValidateTokenResponse{Valid: true, UserId: "u1", OrganizationId: "o1",
			Scopes: []string{"a", "b"}, ExpireTime: c.expire})
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if e, ok := got["exp"]; e != c.want || ok != (c.want != nil) {
			t.Errorf("expiry %v: body %s, want exp %v", c.expire, b, c.want)
		}
		if got["sub"] != "u1" || got["scope"] != "a b" || got["org"] != "o1" || got["kind"] != "user" {
			t.Errorf("body %s", b)
		}
	}
}

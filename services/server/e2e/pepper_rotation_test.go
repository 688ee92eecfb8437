package e2e

import (
	"encoding/base64"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Rotating the pepper invalidates nothing (README, Peppers): a token minted
// under pepper 1 validates after keymint restarts with pepper 2 as primary,
// is revoked through the restarted server, and is then refused; a token
// minted after the restart (under pepper 2) validates too.
//
// Mutation: services/tokens/lookup.go lookup offers only the primary digest,
// `keys := make([]cache.Key, s.keys.Len())` → `make([]cache.Key, 1)`.
func TestPepperRotationEndToEnd(t *testing.T) {
	t.Parallel()
	pepper := func(id, key string) string { return id + ":" + base64.StdEncoding.EncodeToString([]byte(key)) }
	p1, p2 := pepper("1", "pepper one 0123456789abcdef01234"), pepper("2", "pepper two 0123456789abcdef01234")
	eachStore(t, func(t *testing.T, cfg Config) {
		user := account{"pepper@example.com", "a long test password"}
		cfg.Pepper = p1
		createUser(t, cfg, user.email, "acme", user.password, false)
		srv := startServer(t, cfg)
		old := user.mint(t, srv, &keymintv1.CreateTokenRequest{})
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: old.Secret}); !r.Valid {
			t.Fatalf("before the rotation: %v", r)
		}
		srv.stop()

		cfg.Pepper = p2 + "\n" + p1 // a new primary first, the old one kept
		srv = startServer(t, cfg)
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: old.Secret}); !r.Valid || r.TokenId != old.Token.Id {
			t.Fatalf("an old-pepper token after the restart: %v", r)
		}
		// Over REST too.
		if v := restValidate(t, srv, `{"token":"`+old.Secret+`"}`); v["valid"] != true {
			t.Fatalf("REST, old-pepper token: %v", v)
		}
		fresh := user.mint(t, srv, &keymintv1.CreateTokenRequest{})
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: fresh.Secret}); !r.Valid {
			t.Fatalf("a token minted under the new pepper: %v", r)
		}
		if _, err := srv.client.RevokeToken(user.ctx(), &keymintv1.RevokeTokenRequest{Id: old.Token.Id}); err != nil {
			t.Fatal(err)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: old.Secret}); r.Valid || r.Reason != keymintv1.ValidateTokenResponse_REVOKED {
			t.Fatalf("an old-pepper token after its revoke: %v", r)
		}
	})
}

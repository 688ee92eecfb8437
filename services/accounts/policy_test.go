package accounts

import (
	"fmt"
	"testing"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// The scopes an admin gives a service account or a person are kept
// trimmed, sorted and unique, and each must be defined in the org policy;
// none means every scope of the organization. Shown failing on
// policy.go:204 `err != nil` → `==` and :207 `len(scopes) == 0` → `!=`
// (either drops the scopes asked for, leaving the account unrestricted; on
// 7eede42).
func TestUserScopesKeptAndDefined(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	ctx := as(f.admin)
	if _, err := f.svc.UpdateOrgPolicy(ctx, store.OrgPolicy{AllowedScopes: []string{"read", "deploy"}}, []string{PolicyAllowedScopes}); err != nil {
		t.Fatal(err)
	}
	sa, err := f.svc.CreateServiceAccount(ctx, NewServiceAccount{Name: "ci", Scopes: []string{" read", "deploy", "read"}})
	if err != nil {
		t.Fatal(err)
	}
	stored := must(f.store.GetUser(t.Context(), sa.ID))(t)
	if fmt.Sprint(sa.Scopes, stored.Scopes) != "[deploy read] [deploy read]" {
		t.Errorf("service account scopes %q, stored %q; want [deploy read]", sa.Scopes, stored.Scopes)
	}
	u, err := f.svc.UpdateUserScopes(ctx, f.member.ID, []string{"deploy"})
	if err != nil || fmt.Sprint(u.Scopes) != "[deploy]" {
		t.Fatalf("UpdateUserScopes = %q, %v; want [deploy]", u.Scopes, err)
	}
	if p, err := f.svc.Authenticate(t.Context(), f.member.Email, fixturePassword); err != nil || fmt.Sprint(p.HeldScopes) != "[deploy]" {
		t.Errorf("the member signs in holding %q, %v; want [deploy]", p.HeldScopes, err)
	}
	for _, scopes := range [][]string{{"write"}, {"read", "has space"}} {
		_, err := f.svc.UpdateUserScopes(ctx, f.member.ID, scopes)
		wantCode(t, fmt.Sprintf("UpdateUserScopes(%q)", scopes), err, fault.InvalidArgument)
		_, err = f.svc.CreateServiceAccount(ctx, NewServiceAccount{Name: "refused", Scopes: scopes})
		wantCode(t, fmt.Sprintf("CreateServiceAccount(%q)", scopes), err, fault.InvalidArgument)
	}
	if u := must(f.store.GetUser(t.Context(), f.member.ID))(t); fmt.Sprint(u.Scopes) != "[deploy]" {
		t.Errorf("a refused update changed the member's scopes to %q", u.Scopes)
	}
	if u, err := f.svc.UpdateUserScopes(ctx, f.member.ID, nil); err != nil || len(u.Scopes) != 0 {
		t.Errorf("UpdateUserScopes(none) = %q, %v; want no restriction", u.Scopes, err)
	}
}

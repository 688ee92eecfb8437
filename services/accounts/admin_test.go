package accounts

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
)

// adminFixture is a Service on a real (SQLite) store with an admin and a
// member of acme, and an admin of another organization.
type adminFixture struct {
	svc                *Service
	store              store.Store
	clock              *clock
	admin, member, out store.User
	revoked            [][]store.Token
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &adminFixture{store: st, clock: &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}}
	f.svc, err = New(t.Context(), Config{Store: st, Hasher: newTestHasher(t, HasherConfig{}), Now: f.clock.Now,
		Audit:   audit.New(audit.Config{Store: st}),
		Revoked: func(_ context.Context, r []store.Token) { f.revoked = append(f.revoked, r) }})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(email, org string, admin bool) store.User {
		u, _, err := f.svc.CreateUser(t.Context(), NewUser{Email: email, OrgName: org, Password: fixturePassword, Admin: admin})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.admin, f.member, f.out = mk("root@acme.example", "acme", true), mk("sam@acme.example", "acme", false), mk("root@globex.example", "globex", true)
	return f
}

func as(u store.User) context.Context {
	return authn.WithPrincipal(context.Background(), authn.Principal{UserID: u.ID, OrgID: u.OrgID, Email: u.Email,
		Admin: u.Admin, HeldScopes: u.Scopes, Method: authn.ByPassword})
}

func wantCode(t *testing.T, what string, err error, code fault.Code) {
	t.Helper()
	var f *fault.Error
	if !errors.As(err, &f) || f.Code != code {
		t.Errorf("%s: err = %v, want code %v", what, err, code)
	}
}

// Every admin call: a member is refused (403), another organization's ids
// are NotFound, as are ids that are not ids.
func TestAdminOnlyAndTenantBound(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	sa, err := f.svc.CreateServiceAccount(as(f.admin), NewServiceAccount{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.svc.ListUsers(as(f.member), 0, "", "")
	wantCode(t, "ListUsers(member)", err, fault.PermissionDenied)
	_, err = f.svc.DisableUser(as(f.member), f.admin.ID)
	wantCode(t, "DisableUser(member)", err, fault.PermissionDenied)
	_, err = f.svc.CreateServiceAccount(as(f.member), NewServiceAccount{Name: "x"})
	wantCode(t, "CreateServiceAccount(member)", err, fault.PermissionDenied)
	_, err = f.svc.ListOrgs(as(f.member))
	wantCode(t, "ListOrgs(member)", err, fault.PermissionDenied)

	other := as(f.out)
	for name, call := range map[string]func() error{
		"GetUser":              func() error { _, err := f.svc.GetUser(other, f.member.ID); return err },
		"DisableUser":          func() error { _, err := f.svc.DisableUser(other, f.member.ID); return err },
		"EnableUser":           func() error { _, err := f.svc.EnableUser(other, f.member.ID); return err },
		"DeleteUser":           func() error { _, err := f.svc.DeleteUser(other, f.member.ID); return err },
		"ResetUserPassword":    func() error { _, err := f.svc.ResetUserPassword(other, f.member.ID, ""); return err },
		"SetUserAdmin":         func() error { _, err := f.svc.SetUserAdmin(other, f.member.ID, true); return err },
		"GetServiceAccount":    func() error { _, err := f.svc.ServiceAccount(other, sa.ID); return err },
		"DeleteServiceAccount": func() error { _, err := f.svc.DeleteServiceAccount(other, sa.ID); return err },
		"RenameOrg":            func() error { _, err := f.svc.RenameOrg(other, f.admin.OrgID, "mine"); return err },
		"GetUser(not an id)":   func() error { _, err := f.svc.GetUser(as(f.admin), "../etc"); return err },
		// A service account is not a user, nor a user a service account.
		"GetUser(service account)":   func() error { _, err := f.svc.GetUser(as(f.admin), sa.ID); return err },
		"GetServiceAccount(a user)":  func() error { _, err := f.svc.ServiceAccount(as(f.admin), f.member.ID); return err },
		"DeleteServiceAccount(user)": func() error { _, err := f.svc.DeleteServiceAccount(as(f.admin), f.member.ID); return err },
	} {
		wantCode(t, name, call(), fault.NotFound)
	}
	if u := must(f.store.GetUser(t.Context(), f.member.ID))(t); !u.DisabledAt.IsZero() || !u.DeletedAt.IsZero() || u.Admin {
		t.Errorf("another organization's admin changed the member: %+v", u)
	}
	orgs := must(f.svc.ListOrgs(as(f.admin)))(t)
	if len(orgs) != 1 || orgs[0].ID != f.admin.OrgID {
		t.Errorf("ListOrgs = %+v, want acme only", orgs)
	}
}

func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Disable: sign-in refused (after the password), sessions ended, the
// revocation hook hears the revoked tokens, an admin cannot disable
// themself; enable: sign-in works again, the hook hears nothing.
func TestDisableEnable(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	ctx := t.Context()
	tok := store.Token{ID: "00000000-0000-4000-8000-000000000001", OrgID: f.member.OrgID, UserID: f.member.ID, Name: "t",
		Hint: "km_x", Digest: make([]byte, 32), PepperID: "p", CreatedBy: f.member.ID}
	if err := f.store.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ns, err := f.svc.Login(ctx, f.member.Email, fixturePassword)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.DisableUser(as(f.admin), f.admin.ID)
	wantCode(t, "DisableUser(self)", err, fault.FailedPrecondition)

	rm, err := f.svc.DisableUser(as(f.admin), f.member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rm.Changed || rm.EndedSessions != 1 || len(rm.Revoked) != 1 || len(f.revoked) != 1 || f.revoked[0][0].ID != tok.ID {
		t.Errorf("DisableUser = %+v, hook heard %v", rm, f.revoked)
	}
	if _, err := f.svc.AuthenticateSession(ctx, ns.Secret); err == nil {
		t.Error("the disabled user's session still authenticates")
	}
	_, err = f.svc.Authenticate(ctx, f.member.Email, fixturePassword)
	wantCode(t, "Authenticate(disabled, right password)", err, fault.PermissionDenied)
	_, err = f.svc.Authenticate(ctx, f.member.Email, "a wrong password")
	wantCode(t, "Authenticate(disabled, wrong password)", err, fault.Unauthenticated)
	if _, err := f.svc.DisableUser(as(f.admin), f.member.ID); err != nil || len(f.revoked) != 1 {
		t.Errorf("second DisableUser: %v, hook heard %d batches", err, len(f.revoked))
	}

	u, err := f.svc.EnableUser(as(f.admin), f.member.ID)
	if err != nil || !u.DisabledAt.IsZero() {
		t.Fatalf("EnableUser = %+v, %v", u, err)
	}
	if _, err := f.svc.Authenticate(ctx, f.member.Email, fixturePassword); err != nil {
		t.Errorf("sign-in after enable: %v", err)
	}
	if got := must(f.store.GetToken(ctx, tok.ID))(t); got.RevokedAt.IsZero() {
		t.Error("enable brought the token back")
	}
	events := must(f.store.ListAuditEvents(ctx, store.AuditFilter{OrgID: f.admin.OrgID}))(t)
	seen := map[string]bool{}
	for _, e := range events {
		if e.ActorUserID == f.admin.ID {
			seen[e.Action] = true
		}
	}
	if !seen[audit.UserDisable] || !seen[audit.UserEnable] {
		t.Errorf("audit actions by the admin: %v", seen)
	}
}

// A reset code: returned once, works once, not after its lifetime, ends the
// sessions; the same answer for an unknown email, a wrong code and a used one.
func TestPasswordResetCode(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	ctx := t.Context()
	r, err := f.svc.ResetUserPassword(as(f.admin), f.member.ID, "")
	if err != nil || len(r.Code) != resetCodeLen || !r.ExpiresAt.Equal(f.clock.Now().Add(ResetCodeLifetime)) {
		t.Fatalf("ResetUserPassword = %+v, %v", r, err)
	}
	const next = "the member's new long password"
	wantCode(t, "unknown email", f.svc.CompletePasswordReset(ctx, "nobody@acme.example", r.Code, next), fault.Unauthenticated)
	wantCode(t, "wrong code", f.svc.CompletePasswordReset(ctx, f.member.Email, "AAAAAAAAAAAAAAAAAAAAAA", next), fault.Unauthenticated)
	wantCode(t, "short password", f.svc.CompletePasswordReset(ctx, f.member.Email, r.Code, "short"), fault.InvalidArgument)
	if err := f.svc.CompletePasswordReset(ctx, " SAM@acme.example ", r.Code, next); err != nil {
		t.Fatalf("CompletePasswordReset: %v", err)
	}
	if _, err := f.svc.Authenticate(ctx, f.member.Email, next); err != nil {
		t.Errorf("sign-in with the new password: %v", err)
	}
	wantCode(t, "used code", f.svc.CompletePasswordReset(ctx, f.member.Email, r.Code, next+"!"), fault.Unauthenticated)

	r, err = f.svc.ResetUserPassword(as(f.admin), f.member.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(ResetCodeLifetime)
	wantCode(t, "expired code", f.svc.CompletePasswordReset(ctx, f.member.Email, r.Code, next), fault.Unauthenticated)

	// An admin may set the password instead.
	if _, err := f.svc.ResetUserPassword(as(f.admin), f.member.ID, "set by the admin, long"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, f.member.Email, "set by the admin, long"); err != nil {
		t.Errorf("sign-in with the admin's password: %v", err)
	}
}

// Service accounts: named uniquely, never sign in; deleting one revokes
// through the hook. Deleting a user frees the email and keeps the id.
func TestServiceAccountsAndDelete(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	ctx := t.Context()
	_, err := f.svc.CreateServiceAccount(as(f.admin), NewServiceAccount{Name: "Bad Name"})
	wantCode(t, "bad name", err, fault.InvalidArgument)
	sa, err := f.svc.CreateServiceAccount(as(f.admin), NewServiceAccount{Name: "ci", Description: "deploys"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CreateServiceAccount(as(f.admin), NewServiceAccount{Name: "ci"})
	wantCode(t, "duplicate name", err, fault.AlreadyExists)
	_, err = f.svc.Authenticate(ctx, sa.Email, "")
	wantCode(t, "service account sign-in", err, fault.Unauthenticated)
	list, _, err := f.svc.ListServiceAccounts(as(f.admin), 0, "")
	if err != nil || len(list) != 1 || list[0].ID != sa.ID {
		t.Errorf("ListServiceAccounts = %v, %v", list, err)
	}
	people, _, err := f.svc.ListUsers(as(f.admin), 0, "", "")
	if err != nil || len(people) != 2 {
		t.Errorf("ListUsers = %v, %v; want the two people only", people, err)
	}
	if _, err := f.svc.DeleteServiceAccount(as(f.admin), sa.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.ServiceAccount(as(f.admin), sa.ID)
	wantCode(t, "deleted service account", err, fault.NotFound)

	if _, err := f.svc.DeleteUser(as(f.admin), f.member.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.GetUser(as(f.admin), f.member.ID)
	wantCode(t, "deleted user", err, fault.NotFound)
	if _, _, err := f.svc.CreateUser(ctx, NewUser{Email: f.member.Email, OrgName: "acme", Password: fixturePassword}); err != nil {
		t.Errorf("the deleted user's email is not free: %v", err)
	}
	_, err = f.svc.SetUserAdmin(as(f.admin), f.admin.ID, false)
	wantCode(t, "demote self", err, fault.FailedPrecondition)
}

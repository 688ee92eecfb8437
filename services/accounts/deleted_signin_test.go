package accounts

import (
	"errors"
	"testing"
)

// A deleted user's password no longer signs in: the answer is the one an
// unknown email gets. The store's lookup by email already omits a deleted
// user, so this holds even with Authenticate's own second guard (kind and
// DeletedAt, `err == nil && (...)`) negated: that gremlins survivor is
// listed in the README as a second guard.
func TestDeletedUserCannotSignIn(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	ctx := t.Context()
	if _, err := f.svc.Authenticate(ctx, f.member.Email, fixturePassword); err != nil {
		t.Fatalf("before the deletion: %v", err)
	}
	if _, err := f.svc.DeleteUser(as(f.admin), f.member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, f.member.Email, fixturePassword); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a deleted user's sign-in: %v, want ErrInvalidCredentials", err)
	}
}

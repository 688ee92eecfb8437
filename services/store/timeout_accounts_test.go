package store

import (
	"context"
	"time"
)

func (hungStore) ListOrgs(ctx context.Context) ([]Org, error) { return hang[[]Org](ctx) }
func (hungStore) RenameOrg(ctx context.Context, _, _ string) (Org, error) {
	return hang[Org](ctx)
}
func (hungStore) ListUsers(ctx context.Context, _ UserFilter) ([]User, error) {
	return hang[[]User](ctx)
}
func (hungStore) SetUserAdmin(ctx context.Context, _ string, _ bool) error { return hangErr(ctx) }
func (hungStore) DisableUser(ctx context.Context, _ string, _ time.Time, _ ...Event) (Removed, error) {
	return hang[Removed](ctx)
}
func (hungStore) EnableUser(ctx context.Context, _ string) (User, error) { return hang[User](ctx) }
func (hungStore) DeleteUser(ctx context.Context, _ string, _ time.Time, _ ...Event) (Removed, error) {
	return hang[Removed](ctx)
}
func (hungStore) SetPasswordReset(ctx context.Context, _ string, _ []byte, _ time.Time) error {
	return hangErr(ctx)
}
func (hungStore) RedeemPasswordReset(ctx context.Context, _ string, _ []byte, _ time.Time, _ string, _ ...Event) (int, error) {
	return hang[int](ctx)
}

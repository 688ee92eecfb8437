package store

import (
	"context"
	"time"
)

func (t *timeoutStore) ListOrgs(ctx context.Context) ([]Org, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListOrgs(ctx)
}

func (t *timeoutStore) RenameOrg(ctx context.Context, orgID, name string) (Org, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RenameOrg(ctx, orgID, name)
}

func (t *timeoutStore) ListUsers(ctx context.Context, f UserFilter) ([]User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListUsers(ctx, f)
}

func (t *timeoutStore) SetUserAdmin(ctx context.Context, userID string, admin bool) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.SetUserAdmin(ctx, userID, admin)
}

func (t *timeoutStore) DisableUser(ctx context.Context, userID string, at time.Time, events ...Event) (Removed, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DisableUser(ctx, userID, at, events...)
}

func (t *timeoutStore) EnableUser(ctx context.Context, userID string) (User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.EnableUser(ctx, userID)
}

func (t *timeoutStore) DeleteUser(ctx context.Context, userID string, at time.Time, events ...Event) (Removed, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DeleteUser(ctx, userID, at, events...)
}

func (t *timeoutStore) SetPasswordReset(ctx context.Context, userID string, codeHash []byte, expiresAt time.Time) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.SetPasswordReset(ctx, userID, codeHash, expiresAt)
}

func (t *timeoutStore) RedeemPasswordReset(ctx context.Context, userID string, codeHash []byte, now time.Time, passwordHash string, events ...Event) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RedeemPasswordReset(ctx, userID, codeHash, now, passwordHash, events...)
}

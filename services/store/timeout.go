package store

import (
	"context"
	"time"
)

// WithTimeout returns s with every call bounded by d, however long the
// caller's own deadline: a server that stopped answering (a network
// partition, a frozen host) costs each caller at most d, instead of holding
// a pool connection, and the request queued behind it, until the RPC's
// deadline. Server-side limits (PostgreSQL's statement_timeout) cannot catch
// that case: they need the server to be running.
func WithTimeout(s Store, d time.Duration) Store {
	return &timeoutStore{s: s, d: d}
}

type timeoutStore struct {
	s Store
	d time.Duration
}

func (t *timeoutStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.d)
}

func (t *timeoutStore) EnsureOrg(ctx context.Context, name string) (Org, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.EnsureOrg(ctx, name)
}

func (t *timeoutStore) GetOrg(ctx context.Context, id string) (Org, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetOrg(ctx, id)
}

func (t *timeoutStore) CreateUser(ctx context.Context, u User) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.CreateUser(ctx, u)
}

func (t *timeoutStore) GetUser(ctx context.Context, id string) (User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetUser(ctx, id)
}

func (t *timeoutStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetUserByEmail(ctx, email)
}

func (t *timeoutStore) UpdatePasswordHash(ctx context.Context, userID, hash string, events ...Event) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.UpdatePasswordHash(ctx, userID, hash, events...)
}

func (t *timeoutStore) UpdateUserScopes(ctx context.Context, userID string, scopes []string) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.UpdateUserScopes(ctx, userID, scopes)
}

func (t *timeoutStore) UpdateOrgPolicy(ctx context.Context, orgID string, p OrgPolicy) (Org, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.UpdateOrgPolicy(ctx, orgID, p)
}

func (t *timeoutStore) RevocationLogBounds(ctx context.Context) (int64, int64, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RevocationLogBounds(ctx)
}

func (t *timeoutStore) ListRevocations(ctx context.Context, after int64, limit int) ([]RevocationRecord, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListRevocations(ctx, after, limit)
}

func (t *timeoutStore) PruneRevocations(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.PruneRevocations(ctx, before)
}

func (t *timeoutStore) RotateToken(ctx context.Context, id string, successor Token, graceEnd time.Time, events ...Event) (Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RotateToken(ctx, id, successor, graceEnd, events...)
}

func (t *timeoutStore) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.TakeTokenUses(ctx, id, n)
}

func (t *timeoutStore) CreateToken(ctx context.Context, tok Token, events ...Event) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.CreateToken(ctx, tok, events...)
}

func (t *timeoutStore) GetToken(ctx context.Context, id string) (Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetToken(ctx, id)
}

func (t *timeoutStore) GetTokenByDigest(ctx context.Context, digests [][]byte) (Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetTokenByDigest(ctx, digests)
}

func (t *timeoutStore) ListTokens(ctx context.Context, f TokenFilter) ([]Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListTokens(ctx, f)
}

func (t *timeoutStore) RevokeToken(ctx context.Context, id string, at time.Time, events ...Event) (Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RevokeToken(ctx, id, at, events...)
}

func (t *timeoutStore) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.TouchTokens(ctx, lastUsed)
}

func (t *timeoutStore) CreateSession(ctx context.Context, s Session) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.CreateSession(ctx, s)
}

func (t *timeoutStore) GetSessionByHash(ctx context.Context, hash []byte) (Session, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetSessionByHash(ctx, hash)
}

func (t *timeoutStore) TouchSession(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.TouchSession(ctx, id, at)
}

func (t *timeoutStore) DeleteSession(ctx context.Context, id string) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DeleteSession(ctx, id)
}

func (t *timeoutStore) DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DeleteUserSessions(ctx, userID, exceptID)
}

func (t *timeoutStore) DeleteExpiredSessions(ctx context.Context, expiredBy, idleSince time.Time) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DeleteExpiredSessions(ctx, expiredBy, idleSince)
}

func (t *timeoutStore) AppendAuditEvent(ctx context.Context, e AuditEvent) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.AppendAuditEvent(ctx, e)
}

func (t *timeoutStore) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListAuditEvents(ctx, f)
}

func (t *timeoutStore) Ping(ctx context.Context) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.Ping(ctx)
}

func (t *timeoutStore) Close() error { return t.s.Close() }

package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Revoke revokes a token the caller may see. Revoking twice is a no-op.
func (s *Service) Revoke(ctx context.Context, id string) (store.Token, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return store.Token{}, err
	}
	old, err := s.visible(ctx, p, id)
	if err != nil {
		return store.Token{}, err
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	old.RevokedAt = at
	t, err := s.store.RevokeToken(ctx, id, at, events.TokenEvent(events.TokenRevoked, old, at, actorOf(p)))
	if err != nil {
		return store.Token{}, fault.StoreFailure(err, "revoke token")
	}
	// After the commit: a lookup that starts now reads the revocation.
	s.revoked(ctx, t, time.Time{})
	s.log.InfoContext(ctx, "token revoked", "token_id", t.ID, "org_id", t.OrgID, "by_user_id", p.UserID)
	s.audit.Record(ctx, store.AuditEvent{OrgID: t.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: audit.TokenRevoke, TargetID: t.ID})
	return t, nil
}

// RevokeBySecret revokes the token whose secret is secret, for callers that
// kept only the secret (Semaphore's DELETE /api/user/tokens/{token}). It is
// no oracle: a malformed, unknown, or someone else's secret all answer the
// same NotFound, and the lookup itself is the one Validate does.
func (s *Service) RevokeBySecret(ctx context.Context, secret string) (store.Token, error) {
	if _, err := requirePrincipal(ctx); err != nil {
		return store.Token{}, err
	}
	notFound := fault.New(fault.NotFound, "token not found")
	if s.format.Check(secret) != nil {
		return store.Token{}, notFound
	}
	t, err := s.store.GetTokenByDigest(ctx, s.keys.All(secret))
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, notFound
	}
	if err != nil {
		return store.Token{}, fault.StoreFailure(err, "look up token")
	}
	if !s.keys.Matches(t.PepperID, t.Digest, secret) {
		return store.Token{}, notFound
	}
	// Revoke applies the same visibility rule as revoking by id: another
	// user's token is NotFound.
	return s.Revoke(ctx, t.ID)
}

// OwnerRemoved is the accounts service's revocation hook: tokens the store
// revoked because their owner was disabled or deleted go through the same
// steps as a revocation here (caches dropped, log rows applied, published).
func (s *Service) OwnerRemoved(ctx context.Context, revoked []store.Token) {
	for _, t := range revoked {
		s.revoked(ctx, t, time.Time{})
	}
}

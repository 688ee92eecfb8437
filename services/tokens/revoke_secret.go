package tokens

import (
	"context"
	"errors"

	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

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

package tokens

import (
	"context"
	"errors"

	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Reason says why a token was refused.
type Reason int

// Reasons a validation fails.
const (
	ReasonNone Reason = iota
	ReasonMalformed
	ReasonNotFound
	ReasonExpired
	ReasonRevoked
	ReasonInsufficientScope
)

// Result is a validation's answer. Token is set when the token exists, with
// the fields validation answers from: id, owner, org, scopes, expiry,
// revocation, digest and pepper id (the others are zero: the cache does not
// hold them).
type Result struct {
	Valid  bool
	Reason Reason
	Token  store.Token
}

// Validate checks a token and, when required is not empty, that it holds
// every required scope. A malformed token is refused before any lookup. An
// error means the answer is unknown (store unreachable and the token not
// cached), never "valid". Scopes, expiry and revocation are checked on every
// call, cached or not.
func (s *Service) Validate(ctx context.Context, secret string, required []string) (Result, error) {
	if s.format.Check(secret) != nil {
		return Result{Reason: ReasonMalformed}, nil
	}
	e, primary, err := s.lookup(ctx, secret)
	if err != nil {
		return Result{}, err
	}
	if e.Negative || !s.matches(e, primary, secret) {
		return Result{Reason: ReasonNotFound}, nil
	}
	t := tokenOf(e)
	now := s.now()
	switch StatusAt(t, now) {
	case StatusRevoked:
		return Result{Reason: ReasonRevoked, Token: t}, nil
	case StatusExpired:
		return Result{Reason: ReasonExpired, Token: t}, nil
	}
	if !hasScopes(t.Scopes, required) {
		return Result{Reason: ReasonInsufficientScope, Token: t}, nil
	}
	if s.usage != nil {
		s.usage.Record(t.ID, now)
	}
	return Result{Valid: true, Token: t}, nil
}

// hasScopes reports whether have (sorted) holds every scope in want.
func hasScopes(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// errInvalidToken is the one answer to any unusable token used as a
// credential; the reason is not told to the caller.
var errInvalidToken = fault.New(fault.Unauthenticated, "invalid token")

// AuthenticateToken resolves a token used as a credential to its principal.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (accounts.Principal, error) {
	r, err := s.Validate(ctx, secret, nil)
	if err != nil {
		return accounts.Principal{}, err
	}
	if !r.Valid {
		return accounts.Principal{}, errInvalidToken
	}
	u, err := s.store.GetUser(ctx, r.Token.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return accounts.Principal{}, errInvalidToken
	}
	if err != nil {
		return accounts.Principal{}, fault.StoreFailure(err, "get token owner")
	}
	return accounts.Principal{
		UserID:  u.ID,
		OrgID:   u.OrgID,
		Email:   u.Email,
		Admin:   u.Admin && hasScopes(r.Token.Scopes, []string{AdminScope}),
		Method:  accounts.ByToken,
		TokenID: r.Token.ID,
		Scopes:  r.Token.Scopes,
	}, nil
}

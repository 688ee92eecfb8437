package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// DefaultMaxRotationGrace caps a rotation's grace in an org whose policy
// sets no max_rotation_grace.
const DefaultMaxRotationGrace = 30 * 24 * time.Hour

// Rotated is a rotation's outcome: the successor with its secret (revealed
// this once), and the old token as it is now.
type Rotated struct {
	Minted
	Previous store.Token
}

// Rotate mints a successor of token id with the same name, description,
// scopes, metadata, external id, limits, allowed CIDRs and expiry (the
// original's: a rotation never extends a token's life), sharing its usage
// counter, and lets the old secret live for grace more (capped by the org's
// max_rotation_grace), never past its own expiry. Like Mint it needs
// password credentials or a session.
func (s *Service) Rotate(ctx context.Context, id string, grace time.Duration) (Rotated, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return Rotated{}, err
	}
	if p.Method != authn.ByPassword && p.Method != authn.BySession {
		return Rotated{}, fault.New(fault.PermissionDenied, "rotating a token needs x-api-email and x-api-password credentials or a signed-in session; a token cannot mint another token")
	}
	if grace < 0 {
		return Rotated{}, fault.New(fault.InvalidArgument, "gracePeriod must not be negative")
	}
	old, err := s.visible(ctx, p, id)
	if err != nil {
		return Rotated{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	switch {
	case old.RotatedToID != "":
		return Rotated{}, fault.New(fault.FailedPrecondition, "the token was rotated already; rotate its successor")
	case StatusAt(old, now) != StatusActive:
		return Rotated{}, fault.New(fault.FailedPrecondition, "only an active token can be rotated")
	}
	org, err := s.store.GetOrg(ctx, old.OrgID)
	if err != nil {
		return Rotated{}, fault.StoreFailure(err, "get organization")
	}
	limit := org.Policy.MaxRotationGrace
	if limit <= 0 {
		limit = DefaultMaxRotationGrace
	}
	grace = min(grace, limit).Truncate(time.Microsecond)

	secret, err := s.format.Generate()
	if err != nil {
		return Rotated{}, fault.Wrap(fault.Internal, err, "internal error")
	}
	next := old
	next.ID = uuid.NewString()
	next.Hint = s.format.Hint(secret)
	next.Digest = s.keys.Primary(secret)
	next.PepperID = s.keys.PrimaryID()
	next.CreatedBy = p.UserID
	next.CreatedAt = now
	next.LastUsedAt = time.Time{}
	next.RevokedAt = time.Time{}
	next.RotatedToID = ""
	// The counter stays with the chain's first token: a rotation adds no use.
	next.RemainingUses = 0
	prev, err := s.store.RotateToken(ctx, old.ID, next, now.Add(grace),
		events.Rotated(old, next, now.Add(grace), now, actorOf(p)))
	switch {
	case errors.Is(err, store.ErrConflict):
		return Rotated{}, fault.New(fault.FailedPrecondition, "the token was rotated or revoked meanwhile")
	case errors.Is(err, store.ErrNotFound):
		return Rotated{}, fault.New(fault.NotFound, "token not found")
	case err != nil:
		return Rotated{}, fault.StoreFailure(err, "rotate token")
	}
	// The old token's cached expiry is stale now: drop it everywhere, and
	// tell watching validators (the client library, sidecars) to forget it.
	s.revoked(ctx, prev, prev.ExpiresAt)
	s.log.InfoContext(ctx, "token rotated", "token_id", prev.ID, "successor_id", next.ID, "org_id", prev.OrgID,
		"by_user_id", p.UserID, "grace", grace.String())
	s.audit.Record(ctx, store.AuditEvent{OrgID: prev.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditTokenRotate, TargetID: prev.ID})
	s.audit.Record(ctx, store.AuditEvent{OrgID: next.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditTokenMint, TargetID: next.ID})
	return Rotated{Minted: Minted{Token: next, Secret: secret}, Previous: prev}, nil
}

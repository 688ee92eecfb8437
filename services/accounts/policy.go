package accounts

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Policy limits.
const (
	// MaxTokenLifetimeCap bounds an org's max and default token lifetimes.
	MaxTokenLifetimeCap = 10 * 365 * 24 * time.Hour
	// MaxRotationGraceCap bounds an org's max rotation grace.
	MaxRotationGraceCap = 365 * 24 * time.Hour
	// MaxExpiryWarnings bounds an org's token.expiring windows.
	MaxExpiryWarnings = 8
	// maxOrgScopes bounds an organization's list of defined scopes.
	maxOrgScopes = 1000
)

// Policy fields an update can name.
const (
	PolicyAllowedScopes        = "allowed_scopes"
	PolicyMaxTokenLifetime     = "max_token_lifetime"
	PolicyDefaultTokenLifetime = "default_token_lifetime"
	PolicyMaxRotationGrace     = "max_rotation_grace"
	PolicyExpiryWarnings       = "expiry_warnings"
)

// policyOrganizationID is the policy's read-only field, ignored in updates.
const policyOrganizationID = "organization_id"

var policyFields = []string{PolicyAllowedScopes, PolicyMaxTokenLifetime, PolicyDefaultTokenLifetime, PolicyMaxRotationGrace,
	PolicyExpiryWarnings}

func requireCaller(ctx context.Context) (authn.Principal, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return p, fault.New(fault.Unauthenticated, "credentials required: a session, x-api-email and x-api-password, or authorization")
	}
	return p, nil
}

func requireAdmin(ctx context.Context, what string) (authn.Principal, error) {
	p, err := requireCaller(ctx)
	if err != nil {
		return p, err
	}
	if !p.Admin || p.OrgID == "" {
		return p, fault.New(fault.PermissionDenied, what+" needs an organization admin (a token needs the keymint:admin scope)")
	}
	return p, nil
}

// OrgPolicy returns the caller's organization (with its policy).
func (s *Service) OrgPolicy(ctx context.Context) (store.Org, error) {
	p, err := requireCaller(ctx)
	if err != nil {
		return store.Org{}, err
	}
	o, err := s.store.GetOrg(ctx, p.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Org{}, fault.New(fault.NotFound, "organization not found")
	}
	if err != nil {
		return store.Org{}, fault.StoreFailure(err, "get organization")
	}
	return o, nil
}

// UpdateOrgPolicy sets the fields of the caller's organization's policy
// that paths name (all of them when paths is empty). Org admins only.
func (s *Service) UpdateOrgPolicy(ctx context.Context, in store.OrgPolicy, paths []string) (store.Org, error) {
	p, err := requireAdmin(ctx, "changing the org policy")
	if err != nil {
		return store.Org{}, err
	}
	if len(paths) == 0 {
		paths = policyFields
	}
	cur, err := s.OrgPolicy(ctx)
	if err != nil {
		return store.Org{}, err
	}
	next := cur.Policy
	for _, f := range paths {
		switch f {
		case policyOrganizationID:
			// Read-only: a client sending back the policy it read (a
			// read-modify-write) names it; the caller's org is updated.
		case PolicyAllowedScopes:
			if next.AllowedScopes, err = authn.NormalizeScopes(in.AllowedScopes, maxOrgScopes); err != nil {
				return store.Org{}, err
			}
			if len(next.AllowedScopes) == 0 {
				next.AllowedScopes = nil
			}
		case PolicyMaxTokenLifetime:
			next.MaxTokenLifetime = in.MaxTokenLifetime
		case PolicyDefaultTokenLifetime:
			next.DefaultTokenLifetime = in.DefaultTokenLifetime
		case PolicyMaxRotationGrace:
			next.MaxRotationGrace = in.MaxRotationGrace
		case PolicyExpiryWarnings:
			next.ExpiryWarnings = slices.Compact(slices.Sorted(slices.Values(in.ExpiryWarnings)))
		default:
			return store.Org{}, fault.New(fault.InvalidArgument, "updateMask names a field a policy update cannot change (allowedScopes, maxTokenLifetime, defaultTokenLifetime, maxRotationGrace, expiryWarnings)")
		}
	}
	if err := checkPolicy(next); err != nil {
		return store.Org{}, err
	}
	o, err := s.store.UpdateOrgPolicy(ctx, p.OrgID, next)
	if err != nil {
		return store.Org{}, fault.StoreFailure(err, "update org policy")
	}
	s.log.InfoContext(ctx, "org policy updated", "org_id", o.ID, "by_user_id", p.UserID)
	s.audit.Record(ctx, store.AuditEvent{OrgID: o.ID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditOrgPolicyUpdate, TargetID: o.ID})
	return o, nil
}

func checkPolicy(p store.OrgPolicy) error {
	for _, d := range []struct {
		name string
		v    time.Duration
		max  time.Duration
	}{
		{"maxTokenLifetime", p.MaxTokenLifetime, MaxTokenLifetimeCap},
		{"defaultTokenLifetime", p.DefaultTokenLifetime, MaxTokenLifetimeCap},
		{"maxRotationGrace", p.MaxRotationGrace, MaxRotationGraceCap},
	} {
		if d.v < 0 || d.v > d.max {
			return fault.Newf(fault.InvalidArgument, "%s must be between 0 (unset) and %s", d.name, d.max)
		}
		if d.v%time.Microsecond != 0 {
			return fault.Newf(fault.InvalidArgument, "%s must be a whole number of microseconds", d.name)
		}
	}
	if len(p.ExpiryWarnings) > MaxExpiryWarnings {
		return fault.Newf(fault.InvalidArgument, "expiryWarnings: at most %d windows", MaxExpiryWarnings)
	}
	for _, w := range p.ExpiryWarnings {
		if w < time.Minute || w > MaxTokenLifetimeCap || w%time.Second != 0 {
			return fault.Newf(fault.InvalidArgument, "expiryWarnings must be whole seconds from 1m to %s", MaxTokenLifetimeCap)
		}
	}
	if p.MaxTokenLifetime > 0 && p.DefaultTokenLifetime > p.MaxTokenLifetime {
		return fault.New(fault.InvalidArgument, "defaultTokenLifetime must not exceed maxTokenLifetime")
	}
	return nil
}

// UpdateUserScopes sets the scopes a user of the caller's organization
// holds (empty: every scope of the organization). Org admins only; a user
// of another organization is NotFound.
func (s *Service) UpdateUserScopes(ctx context.Context, userID string, scopes []string) (store.User, error) {
	p, err := requireAdmin(ctx, "changing a user's scopes")
	if err != nil {
		return store.User{}, err
	}
	notFound := fault.New(fault.NotFound, "user not found")
	if uuid.Validate(userID) != nil {
		return store.User{}, notFound
	}
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, notFound
	}
	if err != nil {
		return store.User{}, fault.StoreFailure(err, "get user")
	}
	if u.OrgID != p.OrgID {
		return store.User{}, notFound
	}
	if scopes, err = s.checkUserScopes(ctx, u.OrgID, scopes); err != nil {
		return store.User{}, err
	}
	if err := s.store.UpdateUserScopes(ctx, u.ID, scopes); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.User{}, notFound
		}
		return store.User{}, fault.StoreFailure(err, "update user scopes")
	}
	u.Scopes = scopes
	s.log.InfoContext(ctx, "user scopes updated", "user_id", u.ID, "org_id", u.OrgID, "by_user_id", p.UserID)
	s.audit.Record(ctx, store.AuditEvent{OrgID: u.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditUserScopesUpdate, TargetID: u.ID})
	return u, nil
}

// checkUserScopes normalizes scopes for a user of org and checks each is
// defined there.
func (s *Service) checkUserScopes(ctx context.Context, orgID string, scopes []string) ([]string, error) {
	scopes, err := authn.NormalizeScopes(scopes, authn.MaxScopes)
	if err != nil {
		return nil, err
	}
	if len(scopes) == 0 {
		return nil, nil
	}
	o, err := s.store.GetOrg(ctx, orgID)
	if err != nil {
		return nil, fault.StoreFailure(err, "get organization")
	}
	if err := authn.CheckScopesDefined(o.Policy.AllowedScopes, scopes); err != nil {
		return nil, err
	}
	return slices.Clip(scopes), nil
}

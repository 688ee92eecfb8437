package tokens

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Limits on what a caller may put in a token.
const (
	maxNameLen        = 200
	maxDescriptionLen = 2000
	maxScopes         = 64
)

// MintRequest describes a token to mint.
type MintRequest struct {
	Name        string
	Description string
	Scopes      []string
	// ExpiresAt or TTL; zero for neither (the org's default lifetime).
	ExpiresAt time.Time
	TTL       time.Duration
	Options
	// ServiceAccountID, when set, mints for that service account of the
	// caller's organization (admins only) instead of for the caller.
	ServiceAccountID string
}

// Minted is a new token: its stored form and the secret, returned this once.
type Minted struct {
	Token  store.Token
	Secret string
}

// NormalizeScopes checks scope syntax and returns them sorted and unique.
func NormalizeScopes(scopes []string) ([]string, error) {
	return authn.NormalizeScopes(scopes, maxScopes)
}

// Mint creates a token for the calling user. Minting needs password
// credentials or a signed-in session: a token cannot mint another token.
func (s *Service) Mint(ctx context.Context, req MintRequest) (Minted, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return Minted{}, err
	}
	if p.Method != authn.ByPassword && p.Method != authn.BySession {
		return Minted{}, fault.New(fault.PermissionDenied, "minting a token needs x-api-email and x-api-password credentials or a signed-in session; a token cannot mint another token")
	}
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		return Minted{}, fault.New(fault.InvalidArgument, "name is required")
	case utf8.RuneCountInString(name) > maxNameLen || !utf8.ValidString(name):
		return Minted{}, fault.Newf(fault.InvalidArgument, "name must be at most %d characters of valid UTF-8", maxNameLen)
	case utf8.RuneCountInString(req.Description) > maxDescriptionLen || !utf8.ValidString(req.Description):
		return Minted{}, fault.Newf(fault.InvalidArgument, "description must be at most %d characters of valid UTF-8", maxDescriptionLen)
	}
	scopes, err := NormalizeScopes(req.Scopes)
	if err != nil {
		return Minted{}, err
	}
	lim, err := req.Options.normalize()
	if err != nil {
		return Minted{}, err
	}
	owner, err := s.owner(ctx, p, req.ServiceAccountID)
	if err != nil {
		return Minted{}, err
	}
	org, err := s.store.GetOrg(ctx, p.OrgID)
	if err != nil {
		return Minted{}, fault.StoreFailure(err, "get organization")
	}
	// An undefined scope is a typo or a guess (400); a defined one the
	// creator lacks is an escalation (403).
	if err := authn.CheckScopesDefined(org.Policy.AllowedScopes, scopes); err != nil {
		return Minted{}, err
	}
	if err := authn.CheckScopesHeld(org.Policy.AllowedScopes, owner.Scopes, scopes); err != nil {
		return Minted{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var expires time.Time
	switch {
	case !req.ExpiresAt.IsZero() && req.TTL != 0:
		return Minted{}, fault.New(fault.InvalidArgument, "set expireTime or ttl, not both")
	case !req.ExpiresAt.IsZero():
		if !req.ExpiresAt.After(now) {
			return Minted{}, fault.New(fault.InvalidArgument, "expireTime must be in the future")
		}
		expires = req.ExpiresAt.UTC().Truncate(time.Microsecond)
	case req.TTL < 0:
		return Minted{}, fault.New(fault.InvalidArgument, "ttl must be positive")
	case req.TTL > 0:
		expires = now.Add(req.TTL)
	}
	if expires, err = applyLifetimePolicy(org.Policy, now, expires); err != nil {
		return Minted{}, err
	}
	secret, err := s.format.Generate()
	if err != nil {
		return Minted{}, fault.Wrap(fault.Internal, err, "internal error")
	}
	t := store.Token{
		ID:          uuid.NewString(),
		OrgID:       p.OrgID,
		UserID:      owner.ID,
		OwnerKind:   owner.Kind,
		Name:        name,
		Description: req.Description,
		Hint:        s.format.Hint(secret),
		Digest:      s.keys.Primary(secret),
		PepperID:    s.keys.PrimaryID(),
		Scopes:      scopes,
		CreatedBy:   p.UserID,
		CreatedAt:   now,
		ExpiresAt:   expires,
	}
	lim.apply(&t)
	if err := s.store.CreateToken(ctx, t, events.TokenEvent(events.TokenCreated, t, now, actorOf(p))); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Disabled or deleted since the caller authenticated.
			return Minted{}, fault.New(fault.FailedPrecondition, "the token's owner is disabled or deleted")
		}
		return Minted{}, fault.StoreFailure(err, "create token")
	}
	s.log.InfoContext(ctx, "token minted", "token_id", t.ID, "org_id", t.OrgID, "user_id", t.UserID, "hint", t.Hint)
	s.audit.Record(ctx, store.AuditEvent{OrgID: t.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: audit.TokenMint, TargetID: t.ID})
	return Minted{Token: t, Secret: secret}, nil
}

// owner is who a token minted by p acts for: p itself (with the scopes p
// holds), or a live service account of p's organization, for an admin.
// Another organization's service account, a person's id or a deleted
// account is NotFound.
func (s *Service) owner(ctx context.Context, p authn.Principal, serviceAccountID string) (store.User, error) {
	if serviceAccountID == "" {
		return store.User{ID: p.UserID, Kind: store.KindUser, Scopes: p.HeldScopes}, nil
	}
	if !p.Admin {
		return store.User{}, fault.New(fault.PermissionDenied, "minting a service account's token needs an organization admin")
	}
	notFound := fault.New(fault.NotFound, "service account not found")
	if uuid.Validate(serviceAccountID) != nil {
		return store.User{}, notFound
	}
	u, err := s.store.GetUser(ctx, serviceAccountID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, notFound
	}
	if err != nil {
		return store.User{}, fault.StoreFailure(err, "get service account")
	}
	if u.OrgID != p.OrgID || u.Kind != store.KindServiceAccount || !u.DeletedAt.IsZero() {
		return store.User{}, notFound
	}
	return u, nil
}

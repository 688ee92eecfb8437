// Package tokens is keymint's TokenService: minting, validating, listing,
// getting and revoking API tokens, the token format and the pepper key ring.
package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/throttle"
)

// Store is what tokens needs of store.Store.
type Store interface {
	GetUser(ctx context.Context, id string) (store.User, error)
	CreateToken(ctx context.Context, t store.Token, events ...store.Event) error
	GetToken(ctx context.Context, id string) (store.Token, error)
	GetTokenByDigest(ctx context.Context, digests [][]byte) (store.Token, error)
	ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error)
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
	GetOrg(ctx context.Context, id string) (store.Org, error)
	RotateToken(ctx context.Context, id string, successor store.Token, graceEnd time.Time, events ...store.Event) (store.Token, error)
	TakeTokenUses(ctx context.Context, id string, n int64) (taken, left int64, err error)
	// TokensByDigests looks up a partner's leak report in bulk (reported.go).
	TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error)
}

// UsageCounter takes uses of usage-limited tokens (quota.Counter).
type UsageCounter interface {
	// Take takes one use of pool's counter: ok false when none is left,
	// left what remains after it; hint is the last known count.
	Take(ctx context.Context, pool string, hint int64) (ok bool, left int64, err error)
	// Leased returns the uses held outside the store per pool, for display.
	Leased(ctx context.Context, pools []string) map[string]int64
}

// Config configures a Service.
type Config struct {
	Store   Store
	Keyring *Keyring
	Format  Format
	Logger  *slog.Logger
	Now     func() time.Time
	// Usage records last use; nil disables last-used tracking.
	Usage *UsageRecorder
	// Cache is the validation cache; nil validates from the store every time.
	Cache Cache
	// Revocations is this replica's revocation log follower, which every
	// revoke is handed to and WatchRevocations streams from; nil disables
	// WatchRevocations.
	Revocations *Revocations
	// WatchRequiresScope makes WatchRevocations need a token with the
	// keymint:watch scope (WatchScope).
	WatchRequiresScope bool
	// Audit records mints and revocations; nil records nothing.
	Audit *audit.Recorder
	// Uses counts down usage-limited tokens; nil counts in the store.
	Uses UsageCounter
	// Rates limits rate-limited tokens and leak reports; nil limits in
	// process.
	Rates throttle.Limiter
	// Clients finds a call's client address (a token used as a credential
	// is checked against its allowed CIDRs with it; leak reports are rate
	// limited by it). Nil trusts no proxy.
	Clients *clientip.Resolver
	// LeakReportLimit bounds leak reports per client address; zero is
	// DefaultLeakReportLimit.
	LeakReportLimit throttle.Limit
}

// Service implements token minting and validation over a Store.
type Service struct {
	store  Store
	keys   *Keyring
	format Format
	log    *slog.Logger
	now    func() time.Time
	usage  *UsageRecorder
	cache  Cache
	revs   *Revocations
	// watchScope: WatchRevocations needs the keymint:watch scope.
	watchScope bool
	audit      *audit.Recorder
	uses       UsageCounter
	rates      throttle.Limiter
	// clients resolves client addresses; leakLimit bounds leak reports.
	clients   *clientip.Resolver
	leakLimit throttle.Limit
	// background tracks work that outlives its call (leak revocations).
	background sync.WaitGroup
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: cfg.Store, keys: cfg.Keyring, format: cfg.Format, log: cfg.Logger, now: cfg.Now, usage: cfg.Usage, cache: cfg.Cache,
		revs: cfg.Revocations, watchScope: cfg.WatchRequiresScope, audit: cfg.Audit, uses: cfg.Uses, rates: cfg.Rates, clients: cfg.Clients, leakLimit: cfg.LeakReportLimit}
	if s.uses == nil {
		s.uses = storeUses{cfg.Store}
	}
	if s.rates == nil {
		// NewLocal fails only on an invalid otter configuration.
		local, err := throttle.NewLocal(0, nil)
		if err != nil {
			panic(err)
		}
		s.rates = local
	}
	if s.leakLimit.Burst == 0 {
		s.leakLimit = DefaultLeakReportLimit
	}
	return s
}

// Wait waits for background work (revocations of reported leaks) to end;
// call it at shutdown before closing the store.
func (s *Service) Wait() { s.background.Wait() }

// Limits on what a caller may put in a token.
const (
	maxNameLen        = 200
	maxDescriptionLen = 2000
	maxScopes         = 64
	maxPageSize       = 1000
	defaultPageSize   = 100
)

// AdminScope lets a token of an org admin act as an admin (list and revoke
// the org's tokens). Without it an admin's token acts for its user alone, so
// a leaked token cannot reach the whole organization.
const AdminScope = authn.AdminScope

// MintRequest describes a token to mint.
type MintRequest struct {
	Name        string
	Description string
	Scopes      []string
	// ExpiresAt or TTL; zero for neither (the org's default lifetime).
	ExpiresAt time.Time
	TTL       time.Duration
	Limits
	// ServiceAccountID, when set, mints for that service account of the
	// caller's organization (admins only) instead of for the caller.
	ServiceAccountID string
}

// Minted is a new token: its stored form and the secret, returned this once.
type Minted struct {
	Token  store.Token
	Secret string
}

func requirePrincipal(ctx context.Context) (authn.Principal, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return p, fault.New(fault.Unauthenticated, "credentials required: x-api-email and x-api-password, or authorization")
	}
	return p, nil
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
	lim, err := req.Limits.normalize()
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
		Action: store.AuditTokenMint, TargetID: t.ID})
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

// OwnerRemoved is the accounts service's revocation hook: tokens the store
// revoked because their owner was disabled or deleted go through the same
// steps as a revocation here (caches dropped, log rows applied, published).
func (s *Service) OwnerRemoved(ctx context.Context, revoked []store.Token) {
	for _, t := range revoked {
		s.revoked(ctx, t, time.Time{})
	}
}

// Status is a token's state at a given time.
type Status int

// Token states.
const (
	StatusActive Status = iota + 1
	StatusExpired
	StatusRevoked
)

// StatusAt returns t's state at now. Expiry takes effect exactly at ExpiresAt.
func StatusAt(t store.Token, now time.Time) Status {
	switch {
	case !t.RevokedAt.IsZero():
		return StatusRevoked
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// visible loads a token the caller may see: their own, or any of their org's
// for an admin. Anything else is NotFound, so ids of others do not leak.
func (s *Service) visible(ctx context.Context, p authn.Principal, id string) (store.Token, error) {
	notFound := fault.New(fault.NotFound, "token not found")
	if _, err := uuid.Parse(id); err != nil {
		return store.Token{}, notFound
	}
	t, err := s.store.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, notFound
	}
	if err != nil {
		return store.Token{}, fault.StoreFailure(err, "get token")
	}
	if t.OrgID != p.OrgID || (t.UserID != p.UserID && !p.Admin) {
		return store.Token{}, notFound
	}
	return t, nil
}

// Get returns one token's metadata.
func (s *Service) Get(ctx context.Context, id string) (store.Token, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return store.Token{}, err
	}
	return s.visible(ctx, p, id)
}

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
		Action: store.AuditTokenRevoke, TargetID: t.ID})
	return t, nil
}

// ListRequest selects a page of tokens.
type ListRequest struct {
	PageSize     int
	PageToken    string
	AllUsers     bool
	ShowInactive bool
	// ServiceAccountID lists that service account's tokens (admins only).
	ServiceAccountID string
}

// List returns a page of the caller's tokens (the org's for an admin asking
// for all users) and the token of the next page, empty on the last.
func (s *Service) List(ctx context.Context, req ListRequest) ([]store.Token, string, error) {
	p, err := requirePrincipal(ctx)
	if err != nil {
		return nil, "", err
	}
	f := store.TokenFilter{OrgID: p.OrgID, UserID: p.UserID, Active: !req.ShowInactive, Now: s.now().UTC()}
	switch {
	case req.ServiceAccountID != "" && req.AllUsers:
		return nil, "", fault.New(fault.InvalidArgument, "set allUsers or serviceAccountId, not both")
	case req.ServiceAccountID != "":
		owner, err := s.owner(ctx, p, req.ServiceAccountID)
		if err != nil {
			return nil, "", err
		}
		f.UserID = owner.ID
	case req.AllUsers:
		if !p.Admin {
			return nil, "", fault.New(fault.PermissionDenied, "listing all users' tokens needs an organization admin")
		}
		// People's tokens: service accounts' are listed apart.
		f.UserID, f.OwnerKind = "", store.KindUser
	}
	switch {
	case req.PageSize < 0:
		return nil, "", fault.New(fault.InvalidArgument, "pageSize must not be negative")
	case req.PageSize == 0:
		f.Limit = defaultPageSize
	default:
		f.Limit = min(req.PageSize, maxPageSize)
	}
	if req.PageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(req.PageToken)
		if err != nil || uuid.Validate(string(after)) != nil {
			return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
		f.AfterID = string(after)
	}
	// One extra row tells whether another page follows.
	f.Limit++
	list, err := s.store.ListTokens(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		// The page token names no token this caller can list.
		return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
	}
	if err != nil {
		return nil, "", fault.StoreFailure(err, "list tokens")
	}
	next := ""
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(list[len(list)-1].ID))
	}
	return list, next, nil
}

// CreatorEmails maps the creators of tokens to their emails, for display.
// A creator that cannot be read is left out.
func (s *Service) CreatorEmails(ctx context.Context, list []store.Token) map[string]string {
	out := map[string]string{}
	for _, t := range list {
		if _, done := out[t.CreatedBy]; done || t.CreatedBy == "" {
			continue
		}
		u, err := s.store.GetUser(ctx, t.CreatedBy)
		if err != nil {
			continue
		}
		out[t.CreatedBy] = u.Email
	}
	return out
}

// actorOf is the caller as events name it.
func actorOf(p authn.Principal) *events.Actor {
	return &events.Actor{UserID: p.UserID, Email: p.Email}
}

// Package tokens is keymint's TokenService: minting, validating, listing,
// getting and revoking API tokens, the token format and the pepper key ring.
package tokens

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/batch"
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
	// ListAuditEvents reads a token's recent events (history.go).
	ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
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
	// byDigest shares store round trips among concurrent lookups
	// (lookup.go).
	byDigest *batch.Batcher[[][]byte, digestAnswer]
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
	s.byDigest = batch.New(batch.Config{MaxBatch: LookupBatchSize, MaxQueued: LookupBatchQueue, MaxInFlight: LookupBatchesInFlight},
		s.lookupBatch)
	return s
}

// Wait waits for background work (revocations of reported leaks) to end;
// call it at shutdown before closing the store.
func (s *Service) Wait() { s.background.Wait() }

// AdminScope lets a token of an org admin act as an admin (list and revoke
// the org's tokens). Without it an admin's token acts for its user alone, so
// a leaked token cannot reach the whole organization.
const AdminScope = authn.AdminScope

func requirePrincipal(ctx context.Context) (authn.Principal, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return p, fault.New(fault.Unauthenticated, "credentials required: x-api-email and x-api-password, or authorization")
	}
	return p, nil
}

// Status is a token's state at a given time.
type Status int

// Token states.
const (
	StatusActive Status = iota + 1
	StatusExpired
	StatusRevoked

	// numStatuses bounds the states: every one needs a row in
	// statusToProto (enums.go). Add new states above it.
	numStatuses
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

// actorOf is the caller as events name it.
func actorOf(p authn.Principal) *events.Actor {
	return &events.Actor{UserID: p.UserID, Email: p.Email}
}

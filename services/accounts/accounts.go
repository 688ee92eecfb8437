// Package accounts holds users, organizations, argon2id passwords, web
// sessions and the authentication of callers (email + password, an API
// token, or a session).
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/throttle"
)

// ErrInvalidCredentials is the one answer to an unknown email or a wrong
// password, so neither can be told from the other.
var ErrInvalidCredentials = fault.New(fault.Unauthenticated, "invalid credentials")

// errThrottled is the answer to a sign-in attempt the throttle refused: the
// same whether the account exists or not, and whichever limit refused it.
// errDisabled answers a correct password of a disabled account.
var errDisabled = fault.New(fault.PermissionDenied, "this account is disabled; ask an organization admin")

var errThrottled = fault.New(fault.ResourceExhausted, "too many sign-in attempts; retry later")

// Store is what accounts needs of store.Store.
type Store interface {
	EnsureOrg(ctx context.Context, name string) (store.Org, error)
	GetOrg(ctx context.Context, id string) (store.Org, error)
	CreateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, email string) (store.User, error)
	UpdatePasswordHash(ctx context.Context, userID, hash string, events ...store.Event) error
	UpdateUserScopes(ctx context.Context, userID string, scopes []string) error
	UpdateOrgPolicy(ctx context.Context, orgID string, p store.OrgPolicy) (store.Org, error)
	CreateSession(ctx context.Context, s store.Session) error
	GetSessionByHash(ctx context.Context, hash []byte) (store.Session, error)
	TouchSession(ctx context.Context, id string, at time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error)
	DeleteExpiredSessions(ctx context.Context, expiredBy, idleSince time.Time) (int, error)
	ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	adminStore
}

// Config configures a Service.
type Config struct {
	Store  Store
	Hasher *Hasher
	Logger *slog.Logger
	Now    func() time.Time
	// SessionIdle ends a session unused for this long; zero means
	// DefaultSessionIdle.
	SessionIdle time.Duration
	// SessionMax ends a session this long after sign-in, used or not; zero
	// means DefaultSessionMax.
	SessionMax time.Duration
	// Throttle limits password guessing; nil throttles nothing.
	Throttle *throttle.SignIn
	// Audit records sign-ins, sign-outs and password changes; nil records
	// nothing.
	Audit *audit.Recorder
	// Clients finds a call's client address, for the throttle (nil trusts no
	// proxy: the gRPC peer is the client).
	Clients *clientip.Resolver
	// Throttled hears the account (normalized email) of every attempt the
	// throttle refused, for aggregated notices; it must not block. Nil: no
	// one listens.
	Throttled func(email string)
	// Revoked hears the tokens DisableUser and DeleteUser revoked in the
	// store (RevocationSeq set), to drop them from the validation caches
	// and apply and publish their revocation log rows (the token service
	// does that; accounts cannot import it). Nil: replicas learn from the
	// log's poll.
	Revoked func(ctx context.Context, revoked []store.Token)
}

// Service manages users and checks their passwords.
type Service struct {
	store  Store
	hasher *Hasher
	log    *slog.Logger
	now    func() time.Time
	// dummyHash is verified against when the email is unknown, so an unknown
	// user costs the same hash as a wrong password.
	dummyHash string
	// sessions holds the web-session settings and state (session.go).
	sessions sessionState
	throttle *throttle.SignIn
	audit    *audit.Recorder
	clients  *clientip.Resolver
	// throttled hears refused attempts (Config.Throttled).
	throttled func(email string)
	revoked   func(ctx context.Context, revoked []store.Token)
}

// New returns a Service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dummy, err := cfg.Hasher.DummyPHC()
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	s := &Service{store: cfg.Store, hasher: cfg.Hasher, log: cfg.Logger, now: cfg.Now, dummyHash: dummy,
		throttle: cfg.Throttle, audit: cfg.Audit, clients: cfg.Clients, throttled: cfg.Throttled, revoked: cfg.Revoked}
	s.sessions.idle, s.sessions.max = cfg.SessionIdle, cfg.SessionMax
	if s.sessions.idle <= 0 {
		s.sessions.idle = DefaultSessionIdle
	}
	if s.sessions.max <= 0 {
		s.sessions.max = DefaultSessionMax
	}
	return s, nil
}

// NormalizeEmail is the one normalisation used to store and look up emails.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

func checkEmail(email string) error {
	at := strings.IndexByte(email, '@')
	if len(email) > 254 || at < 1 || at != strings.LastIndexByte(email, '@') || at == len(email)-1 ||
		strings.ContainsAny(email, " \t\r\n\"<>,;") || !utf8.ValidString(email) {
		return fault.New(fault.InvalidArgument, "email is not a valid address")
	}
	return nil
}

// CheckPassword enforces the password policy for new passwords.
func CheckPassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return fault.Newf(fault.InvalidArgument, "password must be at least %d characters", MinPasswordLen)
	}
	if len(password) > MaxPasswordLen {
		return fault.Newf(fault.InvalidArgument, "password must be at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// NewUser describes a user to create.
type NewUser struct {
	Email    string
	OrgName  string
	Password string
	Admin    bool
	// Scopes the user may put in tokens; empty: every scope of the
	// organization. Each must be defined in the organization's policy.
	Scopes []string
}

// CreateUser creates a user in the named organization, creating the
// organization if it does not exist yet.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (store.User, store.Org, error) {
	email := NormalizeEmail(nu.Email)
	if err := checkEmail(email); err != nil {
		return store.User{}, store.Org{}, err
	}
	orgName := strings.TrimSpace(nu.OrgName)
	if orgName == "" || len(orgName) > 200 {
		return store.User{}, store.Org{}, fault.New(fault.InvalidArgument, "organization name must be 1 to 200 characters")
	}
	if err := CheckPassword(nu.Password); err != nil {
		return store.User{}, store.Org{}, err
	}
	hash, err := s.hasher.Hash(ctx, nu.Password)
	if err != nil {
		return store.User{}, store.Org{}, hashFault(err)
	}
	org, err := s.store.EnsureOrg(ctx, orgName)
	if err != nil {
		return store.User{}, store.Org{}, fault.StoreFailure(err, "create organization")
	}
	scopes, err := s.checkUserScopes(ctx, org.ID, nu.Scopes)
	if err != nil {
		return store.User{}, store.Org{}, err
	}
	u := store.User{
		ID:           uuid.NewString(),
		OrgID:        org.ID,
		Email:        email,
		PasswordHash: hash,
		Admin:        nu.Admin,
		Scopes:       scopes,
		CreatedAt:    s.now().UTC(),
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return store.User{}, store.Org{}, fault.New(fault.AlreadyExists, "a user with this email already exists")
		}
		return store.User{}, store.Org{}, fault.StoreFailure(err, "create user")
	}
	return u, org, nil
}

// Authenticate checks an email and password. The throttle decides first, so
// a refused guess costs no hash; an unknown email is throttled the same as a
// known one. Unknown email and wrong password both pay one argon2id hash,
// write one audit event and return ErrInvalidCredentials.
func (s *Service) Authenticate(ctx context.Context, email, password string) (authn.Principal, error) {
	email = NormalizeEmail(email)
	att, err := s.beginAttempt(ctx, email)
	if err != nil {
		return authn.Principal{}, err
	}
	u, err := s.store.GetUserByEmail(ctx, email)
	if err == nil && (kindOf(u) != store.KindUser || !u.DeletedAt.IsZero()) {
		// A service account (reserved address) signs in never: like no account.
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.hasher.Verify(ctx, password, s.dummyHash); err != nil {
			att.Refund(ctx)
			return authn.Principal{}, hashFault(err)
		}
		// No account, so no tenant: the event names nobody (the attempted
		// email is caller-chosen text, perhaps a password typed in the
		// wrong field) and no organization admin can list it.
		s.audit.Record(ctx, store.AuditEvent{Action: audit.SignInFailure})
		return authn.Principal{}, ErrInvalidCredentials
	case err != nil:
		att.Refund(ctx)
		return authn.Principal{}, fault.StoreFailure(err, "look up user")
	}
	ok, err := s.hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil && !errors.Is(err, errPHC) {
		att.Refund(ctx)
		return authn.Principal{}, hashFault(err)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "stored password hash is invalid", "user_id", u.ID, "err", err.Error())
	}
	if !ok {
		s.audit.Record(ctx, userEvent(u, audit.SignInFailure))
		return authn.Principal{}, ErrInvalidCredentials
	}
	// A success is no guess to count.
	att.Refund(ctx)
	if !u.DisabledAt.IsZero() {
		// Only after the password proved who asks: a disabled account is
		// told so, a guesser learns nothing.
		s.audit.Record(ctx, userEvent(u, audit.SignInFailure))
		return authn.Principal{}, errDisabled
	}
	if s.hasher.NeedsRehash(u.PasswordHash) {
		s.rehash(ctx, u.ID, password)
	}
	s.audit.Record(ctx, userEvent(u, audit.SignInSuccess))
	return authn.Principal{UserID: u.ID, OrgID: u.OrgID, Email: u.Email, Admin: u.Admin, HeldScopes: u.Scopes, Method: authn.ByPassword}, nil
}

// beginAttempt asks the throttle to admit a password check on the account
// (a normalized email) from the call's client address.
func (s *Service) beginAttempt(ctx context.Context, email string) (*throttle.Attempt, error) {
	att, err := s.throttle.Begin(ctx, email, s.clients.FromGRPC(ctx).IP)
	var th *throttle.Throttled
	switch {
	case errors.As(err, &th):
		if s.throttled != nil {
			s.throttled(email)
		}
		return nil, errThrottled.Retry(th.RetryAfter)
	case err != nil:
		return nil, err
	}
	return att, nil
}

// userEvent is an audit event about u, by u.
func userEvent(u store.User, action string) store.AuditEvent {
	return store.AuditEvent{OrgID: u.OrgID, ActorUserID: u.ID, ActorEmail: u.Email, Action: action, TargetID: u.ID}
}

// rehash upgrades a stored hash to the current parameters; failure only logs,
// the sign-in already succeeded.
func (s *Service) rehash(ctx context.Context, userID, password string) {
	hash, err := s.hasher.Hash(ctx, password)
	if err == nil {
		err = s.store.UpdatePasswordHash(ctx, userID, hash)
	}
	if err != nil {
		s.log.WarnContext(ctx, "password rehash failed", "user_id", userID, "err", err.Error())
	}
}

// User returns a user by id.
func (s *Service) User(ctx context.Context, id string) (store.User, error) {
	u, err := s.store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fault.New(fault.NotFound, "user not found")
	}
	if err != nil {
		return store.User{}, fault.StoreFailure(err, "get user")
	}
	return u, nil
}

// busyRetryAfter is the retry hint of a sign-in turned away for want of a
// hashing slot: by then it has waited the hasher's MaxWait already.
const busyRetryAfter = time.Second

func hashFault(err error) error {
	if errors.Is(err, ErrBusy) {
		return fault.Wrap(fault.Unavailable, err, "too many sign-ins in progress, retry shortly").Retry(busyRetryAfter)
	}
	if errors.Is(err, ErrHashUnavailable) {
		return fault.Wrap(fault.Unavailable, err, "password hashing unavailable, retry shortly").Retry(busyRetryAfter)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fault.Wrap(fault.Internal, err, "internal error")
}

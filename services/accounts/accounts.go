// Package accounts holds users, organizations, argon2id passwords and the
// authentication of callers (email + password, or an API token).
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
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// ErrInvalidCredentials is the one answer to an unknown email or a wrong
// password, so neither can be told from the other.
var ErrInvalidCredentials = fault.New(fault.Unauthenticated, "invalid credentials")

// Store is what accounts needs of store.Store.
type Store interface {
	EnsureOrg(ctx context.Context, name string) (store.Org, error)
	GetOrg(ctx context.Context, id string) (store.Org, error)
	CreateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, email string) (store.User, error)
	UpdatePasswordHash(ctx context.Context, userID, hash string) error
}

// Config configures a Service.
type Config struct {
	Store  Store
	Hasher *Hasher
	Logger *slog.Logger
	Now    func() time.Time
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
}

// New returns a Service; it computes the dummy hash once.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dummy, err := cfg.Hasher.Hash(ctx, uuid.NewString())
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	return &Service{store: cfg.Store, hasher: cfg.Hasher, log: cfg.Logger, now: cfg.Now, dummyHash: dummy}, nil
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
	u := store.User{
		ID:           uuid.NewString(),
		OrgID:        org.ID,
		Email:        email,
		PasswordHash: hash,
		Admin:        nu.Admin,
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

// Authenticate checks an email and password. Unknown email and wrong
// password both pay one argon2id hash and return ErrInvalidCredentials.
func (s *Service) Authenticate(ctx context.Context, email, password string) (Principal, error) {
	email = NormalizeEmail(email)
	u, err := s.store.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.hasher.Verify(ctx, password, s.dummyHash); err != nil {
			return Principal{}, hashFault(err)
		}
		return Principal{}, ErrInvalidCredentials
	case err != nil:
		return Principal{}, fault.StoreFailure(err, "look up user")
	}
	ok, err := s.hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		if errors.Is(err, errPHC) {
			s.log.ErrorContext(ctx, "stored password hash is invalid", "user_id", u.ID, "err", err.Error())
			return Principal{}, ErrInvalidCredentials
		}
		return Principal{}, hashFault(err)
	}
	if !ok {
		return Principal{}, ErrInvalidCredentials
	}
	if s.hasher.NeedsRehash(u.PasswordHash) {
		s.rehash(ctx, u.ID, password)
	}
	return Principal{UserID: u.ID, OrgID: u.OrgID, Email: u.Email, Admin: u.Admin, Method: ByPassword}, nil
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

func hashFault(err error) error {
	if errors.Is(err, ErrBusy) {
		return fault.Wrap(fault.Unavailable, err, "too many sign-ins in progress, retry shortly")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fault.Wrap(fault.Internal, err, "internal error")
}

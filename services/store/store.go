// Package store defines keymint's persistence contract: organizations, users
// and tokens. PostgreSQL (store/postgres) is the production source of truth;
// SQLite (store/sqlite) is the embedded default. Both pass store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every backend returns, compared with errors.Is.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a unique key (org name, user email, token id or
	// digest) is taken.
	ErrAlreadyExists = errors.New("already exists")
)

// Org is an organization: the tenant boundary.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// User is a person or service account that signs in with email + password.
type User struct {
	ID    string
	OrgID string
	// Email is stored and looked up exactly as given: callers normalize it
	// (trimmed, lower-cased) before both.
	Email string
	// PasswordHash is an argon2id PHC string.
	PasswordHash string
	Admin        bool
	CreatedAt    time.Time
}

// Token is a token's stored form: its metadata and the HMAC digest of its
// secret. The secret itself is never stored.
type Token struct {
	ID          string
	OrgID       string
	UserID      string
	Name        string
	Description string
	// Hint is the prefix and first characters of the secret, for display.
	Hint string
	// Digest is HMAC-SHA-256(pepper[PepperID], secret).
	Digest   []byte
	PepperID string
	Scopes   []string
	// CreatedBy is the id of the user who minted the token.
	CreatedBy string
	CreatedAt time.Time
	// Zero ExpiresAt, LastUsedAt and RevokedAt mean "not set".
	ExpiresAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// TokenFilter selects tokens for ListTokens. OrgID is always required; an
// empty UserID lists the whole organization.
type TokenFilter struct {
	OrgID  string
	UserID string
	// Active drops revoked tokens and those expired as of Now (expires_at <=
	// Now); a zero Now means the current time.
	Active bool
	Now    time.Time
	// Limit bounds the page (0: no bound); AfterID continues after a token id
	// from an earlier page, and is ErrNotFound unless it names a token that
	// OrgID and UserID select. Tokens come newest first (created_at, then id,
	// both descending, ids compared bytewise).
	Limit   int
	AfterID string
}

// Store is the persistence contract. Every method takes a context and is safe
// for concurrent use. Times are stored with at least microsecond precision,
// in UTC.
type Store interface {
	// EnsureOrg returns the organization with this name, creating it if
	// missing. Concurrent calls with one name return the same org.
	EnsureOrg(ctx context.Context, name string) (Org, error)
	// GetOrg returns an organization by id.
	GetOrg(ctx context.Context, id string) (Org, error)

	// CreateUser inserts a user; ErrAlreadyExists if the id or email is
	// taken. A zero CreatedAt is set to now.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns a user by id.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByEmail returns the user with exactly this (normalized) email.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// UpdatePasswordHash replaces a user's password hash.
	UpdatePasswordHash(ctx context.Context, userID, hash string) error

	// CreateToken inserts a token; ErrAlreadyExists on a duplicate id or
	// digest. A zero CreatedAt is set to now.
	CreateToken(ctx context.Context, t Token) error
	// GetToken returns a token by id.
	GetToken(ctx context.Context, id string) (Token, error)
	// GetTokenByDigest returns the token whose digest is any of digests (one
	// per pepper in the key ring).
	GetTokenByDigest(ctx context.Context, digests [][]byte) (Token, error)
	// ListTokens returns one page of tokens that match f.
	ListTokens(ctx context.Context, f TokenFilter) ([]Token, error)
	// RevokeToken sets revoked_at to at (zero: now) unless the token is
	// already revoked, and returns the token as stored afterwards.
	RevokeToken(ctx context.Context, id string, at time.Time) (Token, error)
	// TouchTokens records last use times in one batch; a time never moves
	// last_used_at backwards, and unknown ids are skipped.
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error

	// Ping checks the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

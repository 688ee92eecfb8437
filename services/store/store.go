// Package store defines keymint's persistence contract: organizations, users,
// tokens, web sessions and the audit log. PostgreSQL (store/postgres) is the production
// source of truth; SQLite (store/sqlite) is the embedded default. Both pass
// store/storetest.
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
	// ErrConflict means the row is not in the state a change needs: a token
	// to rotate is revoked or rotated already, a token to take uses from has
	// no usage limit.
	ErrConflict = errors.New("conflict")
)

// Org is an organization: the tenant boundary.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
	Policy    OrgPolicy
}

// OrgPolicy is an organization's rules for the tokens its users mint. Zero
// values mean "no rule".
type OrgPolicy struct {
	// AllowedScopes are the scopes that exist in the organization (sorted,
	// unique); empty: any syntactically valid scope.
	AllowedScopes []string
	// MaxTokenLifetime caps how long after minting a token may expire.
	MaxTokenLifetime time.Duration
	// DefaultTokenLifetime is the lifetime of a token minted without one.
	DefaultTokenLifetime time.Duration
	// MaxRotationGrace caps a rotation's grace period.
	MaxRotationGrace time.Duration
	// ExpiryWarnings are how long before expiry token.expiring goes out
	// (whole seconds, sorted, unique); empty: the server's default.
	ExpiryWarnings []time.Duration
}

// User kinds: a person who signs in, or an organization-owned machine
// identity whose tokens admins mint.
// They are authn.KindUser and authn.KindServiceAccount's names.
const (
	KindUser           = "user"
	KindServiceAccount = "service_account"
)

// User is a person (signs in with email + password) or a service account
// (Kind KindServiceAccount: no password, no sign-in).
type User struct {
	ID    string
	OrgID string
	// Email is stored and looked up exactly as given: callers normalize it
	// (trimmed, lower-cased) before both.
	Email string
	// PasswordHash is an argon2id PHC string.
	PasswordHash string
	Admin        bool
	// Scopes are the scopes the user may put in tokens (sorted, unique);
	// empty: every scope of the organization.
	Scopes    []string
	CreatedAt time.Time
	// Kind is KindUser or KindServiceAccount; empty is KindUser.
	Kind string
	// Name, Description and CreatedBy (an admin's user id) describe a
	// service account; a service account's Email is
	// ServiceAccountEmail(ID), which no sign-in accepts.
	Name        string
	Description string
	CreatedBy   string
	// DisabledAt is set while the user is disabled (no sign-in, no new
	// tokens); DeletedAt once it is deleted (the row stays for the ids
	// that tokens and the audit log hold). Zero: not set.
	DisabledAt time.Time
	DeletedAt  time.Time
}

// ServiceAccountEmail is the reserved address in a service account's email
// column (.invalid never routes, and sign-in refuses every non-person).
func ServiceAccountEmail(id string) string { return id + "@service-account.invalid" }

// DeletedEmail replaces a deleted user's email, so the address can be
// used for a new account.
func DeletedEmail(id string) string { return id + "@deleted.invalid" }

// UserFilter selects users for ListUsers: one organization's live (not
// deleted) users of one kind.
type UserFilter struct {
	OrgID string
	// Kind is KindUser (the default) or KindServiceAccount.
	Kind string
	// EmailPrefix keeps users whose email starts with it (people only).
	EmailPrefix string
	// Limit bounds the page (0: no bound); AfterID continues after a user
	// of an earlier page (ErrNotFound unless it names a live user of
	// OrgID and Kind).
	// People come by email, service accounts by name, then by id.
	Limit   int
	AfterID string
}

// Owner removal: why DisableUser or DeleteUser revoked a token.
const (
	RevokeReasonOwnerDisabled = "owner_disabled"
	RevokeReasonOwnerDeleted  = "owner_deleted"
)

// Removed is what DisableUser or DeleteUser did: the user as stored
// afterwards, the tokens it revoked (with RevocationSeq set) and how many
// sessions it ended. Changed is false when the user was in that state
// already (nothing was written).
type Removed struct {
	User          User
	Revoked       []Token
	EndedSessions int
	Changed       bool
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
	// ExternalID is the caller's own id for what the token stands for.
	ExternalID string
	// Metadata is a JSON object (protojson of a google.protobuf.Struct);
	// nil for none.
	Metadata []byte
	// AllowedCIDRs are the ranges the token may be used from (canonical
	// prefixes); empty: anywhere.
	AllowedCIDRs []string
	// UsagePool is the id of the token whose counter this token's uses draw
	// from: its own id, or for a successor made by rotation the first token
	// of the chain, so a rotation never adds uses. Empty: unlimited uses.
	UsagePool string
	// RemainingUses is the counter on the pool's own row (UsagePool == ID):
	// the uses not yet taken from the store. Zero on other rows.
	RemainingUses int64
	// RateLimit uses per RatePeriod; zero: no rate limit.
	RateLimit  int64
	RatePeriod time.Duration
	// RotatedToID names the successor of a rotated token.
	RotatedToID string
	// OwnerKind is the owner's kind (KindUser or KindServiceAccount),
	// copied at minting; empty is KindUser.
	OwnerKind string
	// RevokeReason is why a revoked token was revoked: empty for a
	// revocation, or RevokeReasonOwnerDisabled / RevokeReasonOwnerDeleted.
	RevokeReason string
	// RevocationSeq is set only in the answer of a RevokeToken or
	// RotateToken that wrote a revocation log row: that row's sequence. It
	// is not a stored column (the log holds it).
	RevocationSeq int64
}

// Revocation log reasons: why a token left the set of valid tokens.
const (
	// RevocationRevoked: revoked (by its owner, an admin, or a leak report).
	RevocationRevoked = "revoke"
	// RevocationRotated: rotated; it stays valid until NotAfter (the grace
	// end), so caches must drop it but not refuse it yet.
	RevocationRotated = "rotate"
	// RevocationOwnerDisabled, RevocationOwnerDeleted: revoked because its
	// owner was disabled or deleted. Followers treat them as revocations.
	RevocationOwnerDisabled = "owner_disabled"
	RevocationOwnerDeleted  = "owner_deleted"
)

// RevocationRecord is one row of the revocation log, the ordered source of
// truth replicas and followers catch up from. It never holds a secret: the
// digest is the HMAC the caches are keyed by.
type RevocationRecord struct {
	// Seq increases by commit order: a reader that has seen Seq n has seen
	// every row below n that will ever exist.
	Seq     int64
	TokenID string
	Digest  []byte
	Reason  string
	At      time.Time
	// NotAfter is a rotation's grace end; zero for a revocation.
	NotAfter time.Time
}

// TokenFilter selects tokens for ListTokens. OrgID is always required; an
// empty UserID lists the whole organization.
type TokenFilter struct {
	OrgID  string
	UserID string
	// OwnerKind, when set, keeps the tokens of owners of that kind.
	OwnerKind string
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

	// Status narrows by state as of Now (TokenStatus*; empty: Active
	// decides). It wins over Active.
	Status TokenStatus
	// Query keeps tokens whose name, hint or description contains it
	// (case-insensitive for ASCII letters).
	Query string
	// Scope keeps tokens that carry this scope.
	Scope string
	// ExpiresBefore, when set, keeps tokens that expire at or before it
	// (tokens without an expiry never match).
	ExpiresBefore time.Time
	// RotatedToID keeps the token rotated into this id (its predecessor).
	RotatedToID string
	// Order sorts the page; the zero value is newest first. Every order
	// breaks ties by id in the same direction, so AfterID pages stay stable.
	Order TokenOrder
}

// TokenStatus is a token's state for TokenFilter.Status.
type TokenStatus string

// Token states: active (not revoked, not expired), revoked, expired (not
// revoked, expiry passed), inactive (revoked or expired).
const (
	TokenStatusAny      TokenStatus = ""
	TokenStatusActive   TokenStatus = "active"
	TokenStatusRevoked  TokenStatus = "revoked"
	TokenStatusExpired  TokenStatus = "expired"
	TokenStatusInactive TokenStatus = "inactive"
)

// TokenOrder is a ListTokens sort order.
type TokenOrder int

// Sort orders. Tokens never used sort as used longest ago; tokens without
// an expiry as expiring last.
const (
	OrderCreatedDesc TokenOrder = iota
	OrderCreatedAsc
	OrderLastUsedDesc
	OrderLastUsedAsc
	OrderExpiresAsc
	OrderExpiresDesc
)

// Session is a signed-in web session. Its secret is 256 random bits held
// only by the browser (in a cookie); the store keeps Hash, the SHA-256 of it.
type Session struct {
	ID     string
	UserID string
	// Hash is SHA-256(secret): for a 256-bit random secret a fast hash is
	// enough, and it lets a lookup go straight to the row.
	Hash      []byte
	CreatedAt time.Time
	// LastSeenAt is raised lazily (at most about once a minute) for the idle
	// expiry.
	LastSeenAt time.Time
	// ExpiresAt is the absolute expiry, fixed at sign-in.
	ExpiresAt time.Time
}

// AuditEvent is one security-relevant action. It never holds a secret:
// tokens appear by id, passwords and session secrets not at all.
type AuditEvent struct {
	ID string
	// OrgID is the organization the event belongs to. Empty for a sign-in
	// failure naming no known account: such events belong to no tenant, so
	// no organization admin can list them.
	OrgID string
	// ActorUserID and ActorEmail are who acted: the authenticated caller, or
	// for a sign-in the account the attempt named. Empty when unknown.
	ActorUserID string
	ActorEmail  string
	// Action is one of services/audit's action names.
	Action string
	// TargetID is what was acted on: a token id, or the user id of a sign-in
	// or password change.
	TargetID string
	// ClientIP and UserAgent describe the caller's end of the request, as
	// far as keymint can tell (see services/clientip).
	ClientIP  string
	UserAgent string
	CreatedAt time.Time
	// Details are what else the event says, as short strings (a reported
	// leak: url and source); nil for none.
	Details map[string]string
	// SubjectUserID is the user whose token the event concerns when
	// someone else acted (a leak report); that user may list the event.
	SubjectUserID string
}

// AuditFilter selects audit events for ListAuditEvents.
type AuditFilter struct {
	// OrgID is required: the events of one organization (the empty string
	// selects the org-less events, for operators only).
	OrgID string
	// SubjectUserID, when set, selects only the events concerning that
	// user (AuditEvent.SubjectUserID).
	SubjectUserID string
	// Limit bounds the page (0: no bound); AfterID continues after an event
	// id from an earlier page, and is ErrNotFound unless it names an event of
	// OrgID. Events come newest first (created_at, then id, descending).
	Limit   int
	AfterID string

	// Action keeps events of this action (one of the Audit* constants).
	Action string
	// Actor keeps events whose actor's user id or email equals it.
	Actor string
	// TargetIDs keeps events whose target is one of these ids.
	TargetIDs []string
	// Since and Until, when set, keep events created at or after Since and
	// before Until.
	Since, Until time.Time
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
	// UpdatePasswordHash replaces a user's password hash and writes events
	// to the outbox in the same transaction.
	UpdatePasswordHash(ctx context.Context, userID, hash string, events ...Event) error
	// UpdateUserScopes replaces the scopes a user holds; ErrNotFound if the
	// user is gone.
	UpdateUserScopes(ctx context.Context, userID string, scopes []string) error
	// UpdateOrgPolicy replaces an organization's policy and returns the
	// organization; ErrNotFound if it is gone.
	UpdateOrgPolicy(ctx context.Context, orgID string, p OrgPolicy) (Org, error)
	// ListOrgs returns every organization, by name (operators only).
	ListOrgs(ctx context.Context) ([]Org, error)
	// RenameOrg renames an organization and returns it; ErrNotFound if it
	// is gone, ErrAlreadyExists if the name is taken.
	RenameOrg(ctx context.Context, orgID, name string) (Org, error)

	// ListUsers returns one page of the users f selects.
	ListUsers(ctx context.Context, f UserFilter) ([]User, error)
	// SetUserAdmin makes a user an organization admin or not; ErrNotFound
	// if the user is gone or deleted.
	SetUserAdmin(ctx context.Context, userID string, admin bool) error
	// DisableUser, in one transaction, sets disabled_at to at (zero: now),
	// revokes every unrevoked token of the user with RevokeReasonOwnerDisabled
	// (a RevocationOwnerDisabled log row each), deletes the user's sessions
	// and writes events. Disabling a disabled user changes nothing
	// (Changed false). ErrNotFound if the user is gone or deleted.
	DisableUser(ctx context.Context, userID string, at time.Time, events ...Event) (Removed, error)
	// EnableUser clears disabled_at (its tokens stay revoked); ErrNotFound
	// if the user is gone or deleted.
	EnableUser(ctx context.Context, userID string) (User, error)
	// DeleteUser, in one transaction, sets deleted_at, replaces the email
	// with DeletedEmail(id) and clears the password and any reset code,
	// revokes every unrevoked token with RevokeReasonOwnerDeleted (a
	// RevocationOwnerDeleted log row each), deletes the sessions and writes
	// events. ErrNotFound if the user is gone or deleted already.
	DeleteUser(ctx context.Context, userID string, at time.Time, events ...Event) (Removed, error)
	// SetPasswordReset stores the SHA-256 of a one-time reset code valid
	// until expiresAt (replacing an earlier one); ErrNotFound if the user is
	// gone, deleted or not a person.
	SetPasswordReset(ctx context.Context, userID string, codeHash []byte, expiresAt time.Time) error
	// RedeemPasswordReset, in one transaction, checks that the user's reset
	// code hash is codeHash and unexpired at now, clears it, sets the
	// password hash, deletes every session and writes events; it returns how
	// many sessions it ended. ErrNotFound when any of that does not hold
	// (no code, another code, expired, user disabled or deleted).
	RedeemPasswordReset(ctx context.Context, userID string, codeHash []byte, now time.Time, passwordHash string, events ...Event) (int, error)

	// CreateToken inserts a token, and events into the outbox in the same
	// transaction; ErrAlreadyExists on a duplicate id or digest;
	// ErrConflict if its owner is disabled or deleted (checked under the
	// owner's row lock, so a token cannot slip past a concurrent
	// DisableUser). A zero CreatedAt is set to now.
	CreateToken(ctx context.Context, t Token, events ...Event) error
	// GetToken returns a token by id.
	GetToken(ctx context.Context, id string) (Token, error)
	// GetTokenByDigest returns the token whose digest is any of digests (one
	// per pepper in the key ring).
	GetTokenByDigest(ctx context.Context, digests [][]byte) (Token, error)
	// ListTokens returns one page of tokens that match f.
	ListTokens(ctx context.Context, f TokenFilter) ([]Token, error)
	// RevokeToken sets revoked_at to at (zero: now) unless the token is
	// already revoked, and returns the token as stored afterwards. The
	// first revocation appends a RevocationRevoked row to the revocation log
	// in the same transaction (its sequence in RevocationSeq); revoking
	// again writes none. Events go to the outbox in the same transaction,
	// only if this call revoked it.
	RevokeToken(ctx context.Context, id string, at time.Time, events ...Event) (Token, error)
	// TouchTokens records last use times in one batch; a time never moves
	// last_used_at backwards, and unknown ids are skipped.
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
	// RotateToken, in one transaction, inserts successor and marks token id
	// rotated to it: rotated_to_id = successor.ID and expires_at lowered to
	// graceEnd (never raised). It returns the rotated token as stored
	// afterwards, with RevocationSeq set: a RevocationRotated log row is
	// written in the same transaction. ErrNotFound if id is unknown; ErrConflict (and nothing
	// changes) if it is revoked or rotated already; ErrAlreadyExists if the
	// successor's id or digest is taken. Events go to the outbox in the
	// same transaction.
	RotateToken(ctx context.Context, id string, successor Token, graceEnd time.Time, events ...Event) (Token, error)
	// RevocationLogBounds returns the oldest and the newest sequence in the
	// revocation log (0, 0 when it is empty). A follower whose last applied
	// sequence is below oldest-1 has missed rows that were pruned.
	RevocationLogBounds(ctx context.Context) (oldest, head int64, err error)
	// ListRevocations returns up to limit log rows with Seq > after, in
	// Seq order.
	ListRevocations(ctx context.Context, after int64, limit int) ([]RevocationRecord, error)
	// PruneRevocations deletes log rows older than before, always keeping
	// the newest row (so the head survives), and returns how many it deleted.
	PruneRevocations(ctx context.Context, before time.Time) (int, error)
	// TakeTokenUses takes up to n uses from the counter of token id (a
	// usage pool) atomically: taken is min(n, what was left), left is what
	// remains. ErrNotFound if id is unknown; ErrConflict if it has no counter.
	TakeTokenUses(ctx context.Context, id string, n int64) (taken, left int64, err error)

	// CreateSession inserts a session; ErrAlreadyExists on a duplicate id or
	// hash. Zero CreatedAt and LastSeenAt are set to now.
	CreateSession(ctx context.Context, s Session) error
	// GetSessionByHash returns the session whose hash is hash, expired or not.
	GetSessionByHash(ctx context.Context, hash []byte) (Session, error)
	// TouchSession raises last_seen_at to at; it never moves it backwards.
	// ErrNotFound if the session is gone.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// DeleteSession deletes one session; ErrNotFound if it is gone already.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions deletes every session of a user except exceptID
	// (empty: all of them) and returns how many it deleted.
	DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error)
	// DeleteExpiredSessions deletes sessions whose expires_at <= expiredBy or
	// whose last_seen_at <= idleSince, and returns how many it deleted.
	DeleteExpiredSessions(ctx context.Context, expiredBy, idleSince time.Time) (int, error)

	// AppendAuditEvent records an event; ErrAlreadyExists on a duplicate id.
	// A zero CreatedAt is set to now.
	AppendAuditEvent(ctx context.Context, e AuditEvent) error
	// ListAuditEvents returns one page of the events f selects.
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// LeakReports is the durable queue of verified leak reports.
	LeakReports
	// Webhooks is the event outbox, webhook endpoints and expiry notices.
	Webhooks

	// Ping checks the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Limits of the admin API (README "Configuration" lists them).
const (
	// DefaultUserPage and MaxUserPage bound ListUsers and
	// ListServiceAccounts pages.
	DefaultUserPage = 100
	MaxUserPage     = 1000
	// ResetCodeLifetime is how long a password reset code works.
	ResetCodeLifetime = time.Hour
	// maxEmailPrefix bounds ListUsers' email_prefix (an email's length).
	maxEmailPrefix = 254
	// maxServiceAccountDescription bounds a service account's description.
	maxServiceAccountDescription = 500
	// maxOrgName bounds an organization's name (as CreateUser does).
	maxOrgName = 200
)

// serviceAccountName and maxServiceAccountName are a service account's
// name: DNS-label-like, so it is safe in logs, headers and shell scripts.
// The length is checked apart: a counted repetition ({0,63}) compiles to a
// program 63 times the size, marked by the collector on every cycle.
var serviceAccountName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const maxServiceAccountName = 64

// adminStore is the part of Store the admin API uses.
type adminStore interface {
	ListOrgs(ctx context.Context) ([]store.Org, error)
	RenameOrg(ctx context.Context, orgID, name string) (store.Org, error)
	ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error)
	SetUserAdmin(ctx context.Context, userID string, admin bool) error
	DisableUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error)
	EnableUser(ctx context.Context, userID string) (store.User, error)
	DeleteUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error)
	SetPasswordReset(ctx context.Context, userID string, codeHash []byte, expiresAt time.Time) error
	RedeemPasswordReset(ctx context.Context, userID string, codeHash []byte, now time.Time, passwordHash string, events ...store.Event) (int, error)
}

var errUserNotFound = fault.New(fault.NotFound, "user not found")

var errServiceAccountNotFound = fault.New(fault.NotFound, "service account not found")

// member loads a live user of kind in the admin's organization; anything
// else (another organization's, deleted, the other kind, not an id) is
// notFound, so ids of other tenants tell nothing.
func (s *Service) member(ctx context.Context, p authn.Principal, id, kind string, notFound error) (store.User, error) {
	if uuid.Validate(id) != nil {
		return store.User{}, notFound
	}
	u, err := s.store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, notFound
	}
	if err != nil {
		return store.User{}, fault.StoreFailure(err, "get user")
	}
	if u.OrgID != p.OrgID || !u.DeletedAt.IsZero() || kindOf(u) != kind {
		return store.User{}, notFound
	}
	return u, nil
}

func kindOf(u store.User) string {
	if u.Kind == "" {
		return store.KindUser
	}
	return u.Kind
}

func (s *Service) auditAdmin(ctx context.Context, p authn.Principal, orgID, action, target string) {
	s.audit.Record(ctx, store.AuditEvent{OrgID: orgID, ActorUserID: p.UserID, ActorEmail: p.Email, Action: action, TargetID: target})
}

// pageOf reads a page size and token into a filter's Limit and AfterID.
func pageOf(pageSize int, pageToken string) (limit int, after string, err error) {
	switch {
	case pageSize < 0:
		return 0, "", fault.New(fault.InvalidArgument, "pageSize must not be negative")
	case pageSize == 0:
		limit = DefaultUserPage
	default:
		limit = min(pageSize, MaxUserPage)
	}
	if pageToken != "" {
		var ok bool
		if after, ok = store.ParsePageToken(pageToken); !ok {
			return 0, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
	}
	return limit, after, nil
}

func (s *Service) listUsers(ctx context.Context, a adminStore, f store.UserFilter) ([]store.User, string, error) {
	want := f.Limit
	f.Limit++ // one extra row tells whether another page follows
	list, err := a.ListUsers(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
	}
	if err != nil {
		return nil, "", fault.StoreFailure(err, "list users")
	}
	next := ""
	if len(list) > want {
		list = list[:want]
		next = store.PageToken(list[len(list)-1].ID)
	}
	return list, next, nil
}

// ListUsers returns a page of the admin's organization's people, by email.
func (s *Service) ListUsers(ctx context.Context, pageSize int, pageToken, emailPrefix string) ([]store.User, string, error) {
	p, err := requireAdmin(ctx, "listing users")
	if err != nil {
		return nil, "", err
	}
	a := s.store
	if len(emailPrefix) > maxEmailPrefix || !utf8.ValidString(emailPrefix) {
		return nil, "", fault.Newf(fault.InvalidArgument, "emailPrefix must be at most %d bytes of valid UTF-8", maxEmailPrefix)
	}
	limit, after, err := pageOf(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	return s.listUsers(ctx, a, store.UserFilter{OrgID: p.OrgID, Kind: store.KindUser,
		EmailPrefix: NormalizeEmail(emailPrefix), Limit: limit, AfterID: after})
}

// GetUser returns a person of the admin's organization.
func (s *Service) GetUser(ctx context.Context, id string) (store.User, error) {
	p, err := requireAdmin(ctx, "reading a user")
	if err != nil {
		return store.User{}, err
	}
	return s.member(ctx, p, id, store.KindUser, errUserNotFound)
}

// Removal is what DisableUser and DeleteUser did, for the caller and for
// the revocation hook.
type Removal = store.Removed

// DisableUser disables a person of the admin's organization: no sign-in,
// every session ended, every token revoked through the revocation log.
// Their tokens do not come back on EnableUser (services/DESIGN.md).
func (s *Service) DisableUser(ctx context.Context, id string) (store.Removed, error) {
	p, err := requireAdmin(ctx, "disabling a user")
	if err != nil {
		return store.Removed{}, err
	}
	a := s.store
	u, err := s.member(ctx, p, id, store.KindUser, errUserNotFound)
	if err != nil {
		return store.Removed{}, err
	}
	if u.ID == p.UserID {
		return store.Removed{}, fault.New(fault.FailedPrecondition, "an admin cannot disable themself")
	}
	rm, err := a.DisableUser(ctx, u.ID, s.now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		return store.Removed{}, errUserNotFound
	}
	if err != nil {
		return store.Removed{}, fault.StoreFailure(err, "disable user")
	}
	if rm.Changed {
		s.tokensRevoked(ctx, rm.Revoked)
		s.log.InfoContext(ctx, "user disabled", "user_id", u.ID, "org_id", u.OrgID, "by_user_id", p.UserID,
			"revoked_tokens", len(rm.Revoked), "ended_sessions", rm.EndedSessions)
		s.auditAdmin(ctx, p, u.OrgID, audit.UserDisable, u.ID)
	}
	return rm, nil
}

// tokensRevoked hands tokens the store just revoked to the revocation hook
// (the token service: caches here and in Redis, then the log row applied
// here and published to the other replicas).
func (s *Service) tokensRevoked(ctx context.Context, revoked []store.Token) {
	if s.revoked != nil && len(revoked) > 0 {
		s.revoked(ctx, revoked)
	}
}

// EnableUser lets a disabled person sign in and mint tokens again.
func (s *Service) EnableUser(ctx context.Context, id string) (store.User, error) {
	p, err := requireAdmin(ctx, "enabling a user")
	if err != nil {
		return store.User{}, err
	}
	a := s.store
	u, err := s.member(ctx, p, id, store.KindUser, errUserNotFound)
	if err != nil {
		return store.User{}, err
	}
	if u.DisabledAt.IsZero() {
		return u, nil
	}
	u, err = a.EnableUser(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, errUserNotFound
	}
	if err != nil {
		return store.User{}, fault.StoreFailure(err, "enable user")
	}
	s.log.InfoContext(ctx, "user enabled", "user_id", u.ID, "org_id", u.OrgID, "by_user_id", p.UserID)
	s.auditAdmin(ctx, p, u.OrgID, audit.UserEnable, u.ID)
	return u, nil
}

// DeleteUser deletes a person of the admin's organization.
func (s *Service) DeleteUser(ctx context.Context, id string) (store.Removed, error) {
	p, err := requireAdmin(ctx, "deleting a user")
	if err != nil {
		return store.Removed{}, err
	}
	u, err := s.member(ctx, p, id, store.KindUser, errUserNotFound)
	if err != nil {
		return store.Removed{}, err
	}
	if u.ID == p.UserID {
		return store.Removed{}, fault.New(fault.FailedPrecondition, "an admin cannot delete themself")
	}
	return s.remove(ctx, p, u, audit.UserDelete, errUserNotFound)
}

func (s *Service) remove(ctx context.Context, p authn.Principal, u store.User, action string, notFound error) (store.Removed, error) {
	a := s.store
	rm, err := a.DeleteUser(ctx, u.ID, s.now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		return store.Removed{}, notFound
	}
	if err != nil {
		return store.Removed{}, fault.StoreFailure(err, "delete user")
	}
	s.tokensRevoked(ctx, rm.Revoked)
	s.log.InfoContext(ctx, "user deleted", "user_id", u.ID, "kind", kindOf(u), "org_id", u.OrgID, "by_user_id", p.UserID,
		"revoked_tokens", len(rm.Revoked), "ended_sessions", rm.EndedSessions)
	s.auditAdmin(ctx, p, u.OrgID, action, u.ID)
	return rm, nil
}

// PasswordReset is ResetUserPassword's outcome: a code (with its expiry)
// when no password was given, and the sessions ended.
type PasswordReset struct {
	Code          string
	ExpiresAt     time.Time
	EndedSessions int
}

// ResetUserPassword sets a person's password (newPassword non-empty) or
// issues a one-time reset code, kept only as its SHA-256 (128 random bits
// need no slow hash). Either way the person's sessions end.
func (s *Service) ResetUserPassword(ctx context.Context, id, newPassword string) (PasswordReset, error) {
	p, err := requireAdmin(ctx, "resetting a password")
	if err != nil {
		return PasswordReset{}, err
	}
	a := s.store
	u, err := s.member(ctx, p, id, store.KindUser, errUserNotFound)
	if err != nil {
		return PasswordReset{}, err
	}
	var out PasswordReset
	if newPassword != "" {
		if err := CheckPassword(newPassword); err != nil {
			return PasswordReset{}, err
		}
		hash, err := s.hasher.Hash(ctx, newPassword)
		if err != nil {
			return PasswordReset{}, hashFault(err)
		}
		if err := s.store.UpdatePasswordHash(ctx, u.ID, hash); err != nil {
			return PasswordReset{}, fault.StoreFailure(err, "update password")
		}
	} else {
		code, hash, err := newResetCode()
		if err != nil {
			return PasswordReset{}, fault.Wrap(fault.Internal, err, "internal error")
		}
		out.Code, out.ExpiresAt = code, s.now().UTC().Add(ResetCodeLifetime).Truncate(time.Microsecond)
		if err := a.SetPasswordReset(ctx, u.ID, hash, out.ExpiresAt); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return PasswordReset{}, errUserNotFound
			}
			return PasswordReset{}, fault.StoreFailure(err, "store reset code")
		}
	}
	if out.EndedSessions, err = s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
		return PasswordReset{}, fault.StoreFailure(err, "end sessions")
	}
	s.log.InfoContext(ctx, "password reset by an admin", "user_id", u.ID, "org_id", u.OrgID, "by_user_id", p.UserID,
		"code_issued", out.Code != "")
	s.auditAdmin(ctx, p, u.OrgID, audit.UserPasswordReset, u.ID)
	return out, nil
}

// resetCodeLen is the length of a reset code: 128 random bits, base64url.
const resetCodeLen = 22

func newResetCode() (string, []byte, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	return code, hashResetCode(code), nil
}

func hashResetCode(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// CompletePasswordReset redeems a reset code: throttled like a sign-in
// (per account and client address), one Unauthenticated answer for an
// unknown email, a wrong, used or expired code.
func (s *Service) CompletePasswordReset(ctx context.Context, email, code, newPassword string) error {
	email = NormalizeEmail(email)
	if email == "" || code == "" {
		return fault.New(fault.InvalidArgument, "email, resetCode and newPassword are required")
	}
	if err := CheckPassword(newPassword); err != nil {
		return err
	}
	a := s.store
	att, err := s.beginAttempt(ctx, email)
	if err != nil {
		return err
	}
	invalid := fault.New(fault.Unauthenticated, "invalid or expired reset code")
	u, err := s.store.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return invalid
	case err != nil:
		att.Refund(ctx)
		return fault.StoreFailure(err, "look up user")
	}
	if len(code) != resetCodeLen {
		return invalid
	}
	// Hash the new password before the code is used up: a busy hasher
	// must not burn the code.
	hash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		att.Refund(ctx)
		return hashFault(err)
	}
	ended, err := a.RedeemPasswordReset(ctx, u.ID, hashResetCode(code), s.now().UTC(), hash)
	if errors.Is(err, store.ErrNotFound) {
		return invalid
	}
	if err != nil {
		att.Refund(ctx)
		return fault.StoreFailure(err, "redeem reset code")
	}
	att.Refund(ctx)
	s.log.InfoContext(ctx, "password reset redeemed", "user_id", u.ID, "org_id", u.OrgID, "ended_sessions", ended)
	s.audit.Record(ctx, userEvent(u, audit.PasswordResetRedeem))
	return nil
}

// SetUserAdmin promotes or demotes a person of the admin's organization.
func (s *Service) SetUserAdmin(ctx context.Context, id string, admin bool) (store.User, error) {
	p, err := requireAdmin(ctx, "changing who is an admin")
	if err != nil {
		return store.User{}, err
	}
	a := s.store
	u, err := s.member(ctx, p, id, store.KindUser, errUserNotFound)
	if err != nil {
		return store.User{}, err
	}
	if u.ID == p.UserID && !admin {
		return store.User{}, fault.New(fault.FailedPrecondition, "an admin cannot demote themself; another admin can")
	}
	if u.Admin == admin {
		return u, nil
	}
	if err := a.SetUserAdmin(ctx, u.ID, admin); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.User{}, errUserNotFound
		}
		return store.User{}, fault.StoreFailure(err, "set admin")
	}
	u.Admin = admin
	s.log.InfoContext(ctx, "user admin flag changed", "user_id", u.ID, "org_id", u.OrgID, "admin", admin, "by_user_id", p.UserID)
	s.auditAdmin(ctx, p, u.OrgID, audit.UserAdminUpdate, u.ID)
	return u, nil
}

// NewServiceAccount describes a service account to create.
type NewServiceAccount struct {
	Name        string
	Description string
	Scopes      []string
}

// CreateServiceAccount creates a machine identity of the admin's
// organization.
func (s *Service) CreateServiceAccount(ctx context.Context, n NewServiceAccount) (store.User, error) {
	p, err := requireAdmin(ctx, "creating a service account")
	if err != nil {
		return store.User{}, err
	}
	if len(n.Name) > maxServiceAccountName || !serviceAccountName.MatchString(n.Name) {
		return store.User{}, fault.New(fault.InvalidArgument, "name must be 1 to 64 of a-z, 0-9 and -, starting with a letter")
	}
	if utf8.RuneCountInString(n.Description) > maxServiceAccountDescription || !utf8.ValidString(n.Description) {
		return store.User{}, fault.Newf(fault.InvalidArgument, "description must be at most %d characters of valid UTF-8", maxServiceAccountDescription)
	}
	scopes, err := s.checkUserScopes(ctx, p.OrgID, n.Scopes)
	if err != nil {
		return store.User{}, err
	}
	id := uuid.NewString()
	u := store.User{ID: id, OrgID: p.OrgID, Email: store.ServiceAccountEmail(id), Kind: store.KindServiceAccount,
		Name: n.Name, Description: n.Description, CreatedBy: p.UserID, Scopes: scopes,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return store.User{}, fault.New(fault.AlreadyExists, "a service account with this name exists in the organization")
		}
		return store.User{}, fault.StoreFailure(err, "create service account")
	}
	s.log.InfoContext(ctx, "service account created", "service_account_id", u.ID, "org_id", u.OrgID, "by_user_id", p.UserID)
	s.auditAdmin(ctx, p, u.OrgID, audit.ServiceAccountCreate, u.ID)
	return u, nil
}

// ListServiceAccounts returns a page of the organization's service
// accounts, by name.
func (s *Service) ListServiceAccounts(ctx context.Context, pageSize int, pageToken string) ([]store.User, string, error) {
	p, err := requireAdmin(ctx, "listing service accounts")
	if err != nil {
		return nil, "", err
	}
	a := s.store
	limit, after, err := pageOf(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	return s.listUsers(ctx, a, store.UserFilter{OrgID: p.OrgID, Kind: store.KindServiceAccount, Limit: limit, AfterID: after})
}

// ServiceAccount returns a service account of the admin's organization.
func (s *Service) ServiceAccount(ctx context.Context, id string) (store.User, error) {
	p, err := requireAdmin(ctx, "reading a service account")
	if err != nil {
		return store.User{}, err
	}
	return s.member(ctx, p, id, store.KindServiceAccount, errServiceAccountNotFound)
}

// DeleteServiceAccount deletes a service account and revokes its tokens
// through the revocation log.
func (s *Service) DeleteServiceAccount(ctx context.Context, id string) (store.Removed, error) {
	p, err := requireAdmin(ctx, "deleting a service account")
	if err != nil {
		return store.Removed{}, err
	}
	u, err := s.member(ctx, p, id, store.KindServiceAccount, errServiceAccountNotFound)
	if err != nil {
		return store.Removed{}, err
	}
	return s.remove(ctx, p, u, audit.ServiceAccountDelete, errServiceAccountNotFound)
}

// ListOrgs returns the organizations the admin administers: their own.
func (s *Service) ListOrgs(ctx context.Context) ([]store.Org, error) {
	p, err := requireAdmin(ctx, "listing organizations")
	if err != nil {
		return nil, err
	}
	o, err := s.store.GetOrg(ctx, p.OrgID)
	if err != nil {
		return nil, fault.StoreFailure(err, "get organization")
	}
	return []store.Org{o}, nil
}

// RenameOrg renames the admin's organization; another id is NotFound.
func (s *Service) RenameOrg(ctx context.Context, id, name string) (store.Org, error) {
	p, err := requireAdmin(ctx, "renaming the organization")
	if err != nil {
		return store.Org{}, err
	}
	a := s.store
	if id != p.OrgID {
		return store.Org{}, fault.New(fault.NotFound, "organization not found")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxOrgName || !utf8.ValidString(name) {
		return store.Org{}, fault.Newf(fault.InvalidArgument, "name must be 1 to %d bytes of valid UTF-8", maxOrgName)
	}
	o, err := a.RenameOrg(ctx, id, name)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return store.Org{}, fault.New(fault.AlreadyExists, "an organization with this name exists")
	case errors.Is(err, store.ErrNotFound):
		return store.Org{}, fault.New(fault.NotFound, "organization not found")
	case err != nil:
		return store.Org{}, fault.StoreFailure(err, "rename organization")
	}
	s.log.InfoContext(ctx, "organization renamed", "org_id", o.ID, "by_user_id", p.UserID)
	s.auditAdmin(ctx, p, o.ID, audit.OrgRename, o.ID)
	return o, nil
}

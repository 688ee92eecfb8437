package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Session lifetimes when Config leaves them zero.
const (
	DefaultSessionIdle = 30 * time.Minute
	DefaultSessionMax  = 12 * time.Hour
)

const (
	// sessionSecretBytes is the session secret's entropy: 256 bits.
	sessionSecretBytes = 32
	// sessionSecretLen is its length in unpadded base64url.
	sessionSecretLen = 43
	// touchEvery bounds how often a session's last-seen time is written (a
	// quarter of the idle timeout when that is shorter): the idle expiry is
	// that much coarse, and a busy page costs no write per request.
	touchEvery = time.Minute
	// purgeEvery bounds how often a sign-in also deletes expired sessions.
	purgeEvery = 10 * time.Minute
)

// ErrInvalidSession is the one answer to a session secret that is unknown,
// malformed, expired or signed out: the caller has to sign in again.
var ErrInvalidSession = fault.New(fault.Unauthenticated, "session expired or invalid; sign in again")

// sessionState is the Service's session settings and purge clock.
type sessionState struct {
	idle, max time.Duration

	mu        sync.Mutex
	lastPurge time.Time
}

// NewSession is a session just started: its secret, returned this once, and
// when it ends at the latest.
type NewSession struct {
	Principal authn.Principal
	Secret    string
	ExpiresAt time.Time
}

// hashSession is how a session secret is stored and looked up. SHA-256 is
// enough for 256 random bits: nobody can guess a preimage, and no pepper is
// needed to make a stolen table useless.
func hashSession(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Login checks an email and password (as Authenticate does: no telling an
// unknown email from a wrong password) and starts a new session. Every sign-in
// gets a fresh secret; an old session of the same browser is not reused.
func (s *Service) Login(ctx context.Context, email, password string) (NewSession, error) {
	p, err := s.Authenticate(ctx, email, password)
	if err != nil {
		return NewSession{}, err
	}
	raw := make([]byte, sessionSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return NewSession{}, fault.Wrap(fault.Internal, err, "internal error")
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now().UTC().Truncate(time.Microsecond)
	ss := store.Session{
		ID:         uuid.NewString(),
		UserID:     p.UserID,
		Hash:       hashSession(secret),
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(s.sessions.max),
	}
	if err := s.store.CreateSession(ctx, ss); err != nil {
		return NewSession{}, fault.StoreFailure(err, "create session")
	}
	s.purgeSessions(ctx, now)
	s.log.InfoContext(ctx, "signed in", "user_id", p.UserID, "org_id", p.OrgID)
	p.Method, p.SessionID = authn.BySession, ss.ID
	return NewSession{Principal: p, Secret: secret, ExpiresAt: ss.ExpiresAt}, nil
}

// purgeSessions deletes expired sessions, at most once per purgeEvery; a
// failure only logs.
func (s *Service) purgeSessions(ctx context.Context, now time.Time) {
	s.sessions.mu.Lock()
	if now.Sub(s.sessions.lastPurge) < purgeEvery {
		s.sessions.mu.Unlock()
		return
	}
	s.sessions.lastPurge = now
	s.sessions.mu.Unlock()
	n, err := s.store.DeleteExpiredSessions(ctx, now, now.Add(-s.sessions.idle))
	if err != nil {
		s.log.WarnContext(ctx, "purge expired sessions failed", "err", err.Error())
		return
	}
	if n > 0 {
		s.log.DebugContext(ctx, "purged expired sessions", "count", n)
	}
}

// AuthenticateSession resolves a session secret to the principal it acts for.
// A session past its absolute expiry or idle for longer than the idle timeout
// is deleted and refused. The last-seen time is written at most once per
// touchEvery.
func (s *Service) AuthenticateSession(ctx context.Context, secret string) (authn.Principal, error) {
	if len(secret) != sessionSecretLen {
		return authn.Principal{}, ErrInvalidSession
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return authn.Principal{}, ErrInvalidSession
	}
	ss, err := s.store.GetSessionByHash(ctx, hashSession(secret))
	if errors.Is(err, store.ErrNotFound) {
		return authn.Principal{}, ErrInvalidSession
	}
	if err != nil {
		return authn.Principal{}, fault.StoreFailure(err, "look up session")
	}
	now := s.now().UTC()
	if !now.Before(ss.ExpiresAt) || now.Sub(ss.LastSeenAt) >= s.sessions.idle {
		if err := s.store.DeleteSession(ctx, ss.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.WarnContext(ctx, "delete expired session failed", "user_id", ss.UserID, "err", err.Error())
		}
		return authn.Principal{}, ErrInvalidSession
	}
	u, err := s.store.GetUser(ctx, ss.UserID)
	if err == nil && (!u.DisabledAt.IsZero() || !u.DeletedAt.IsZero()) {
		// Disabling deleted the sessions; this one was read just before.
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return authn.Principal{}, ErrInvalidSession
	}
	if err != nil {
		return authn.Principal{}, fault.StoreFailure(err, "get session user")
	}
	if now.Sub(ss.LastSeenAt) >= min(touchEvery, s.sessions.idle/4) {
		err := s.store.TouchSession(ctx, ss.ID, now.Truncate(time.Microsecond))
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Signed out (or the password changed) since the lookup.
			return authn.Principal{}, ErrInvalidSession
		case err != nil:
			// The session is good; a missed touch only makes it idle sooner.
			s.log.WarnContext(ctx, "touch session failed", "user_id", ss.UserID, "err", err.Error())
		}
	}
	return authn.Principal{UserID: u.ID, OrgID: u.OrgID, Email: u.Email, Admin: u.Admin, HeldScopes: u.Scopes, Method: authn.BySession, SessionID: ss.ID}, nil
}

// Logout ends the caller's session. A caller that did not authenticate with a
// session has none to end.
func (s *Service) Logout(ctx context.Context) error {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return ErrInvalidSession
	}
	if p.Method != authn.BySession {
		return fault.New(fault.FailedPrecondition, "this call did not authenticate with a session; there is none to end")
	}
	if err := s.store.DeleteSession(ctx, p.SessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fault.StoreFailure(err, "delete session")
	}
	s.log.InfoContext(ctx, "signed out", "user_id", p.UserID)
	s.audit.Record(ctx, store.AuditEvent{OrgID: p.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: audit.SignOut, TargetID: p.UserID})
	return nil
}

// ChangePassword sets the caller's password after checking the current one,
// then ends every other session of the user (all of them when the caller used
// email + password). An API token cannot change a password: a leaked token
// must not become a way to take over the account. It returns how many
// sessions it ended.
func (s *Service) ChangePassword(ctx context.Context, current, next string) (int, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return 0, fault.New(fault.Unauthenticated, "credentials required: a session, or x-api-email and x-api-password")
	}
	if p.Method != authn.BySession && p.Method != authn.ByPassword {
		return 0, fault.New(fault.PermissionDenied, "changing a password needs a signed-in session or x-api-email and x-api-password; an API token cannot")
	}
	if err := CheckPassword(next); err != nil {
		return 0, err
	}
	u, err := s.store.GetUser(ctx, p.UserID)
	if err != nil {
		return 0, fault.StoreFailure(err, "get user")
	}
	// Checking the current password is a password guess like a sign-in: a
	// stolen session must not become an unthrottled oracle.
	att, err := s.beginAttempt(ctx, u.Email)
	if err != nil {
		return 0, err
	}
	ok, err = s.hasher.Verify(ctx, current, u.PasswordHash)
	if err != nil && !errors.Is(err, errPHC) {
		att.Refund(ctx)
		return 0, hashFault(err)
	}
	if !ok {
		s.audit.Record(ctx, userEvent(u, audit.SignInFailure))
		return 0, fault.New(fault.PermissionDenied, "the current password is not correct")
	}
	att.Refund(ctx)
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return 0, hashFault(err)
	}
	if err := s.store.UpdatePasswordHash(ctx, u.ID, hash, events.PasswordChanged(u, s.now().UTC())); err != nil {
		return 0, fault.StoreFailure(err, "update password")
	}
	s.audit.Record(ctx, userEvent(u, audit.PasswordChange))
	keep := ""
	if p.Method == authn.BySession {
		keep = p.SessionID
	}
	n, err := s.store.DeleteUserSessions(ctx, u.ID, keep)
	if err != nil {
		// The password changed; the other sessions must still end. Report
		// the failure so the caller retries or signs out everywhere.
		return 0, fault.StoreFailure(err, "end other sessions")
	}
	s.log.InfoContext(ctx, "password changed", "user_id", u.ID, "sessions_ended", n)
	return n, nil
}

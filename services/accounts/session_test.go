package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// sessionFixture is a Service on a real (SQLite) store with one user.
type sessionFixture struct {
	svc   *Service
	store store.Store
	clock *clock
	user  store.User
	// logs holds the service's log lines (debug and up), JSON, one a line.
	logs *lockedBuffer
}

const (
	fixtureEmail    = "sam@example.com"
	fixturePassword = "sam's long password"
)

func newSessionFixture(t *testing.T) *sessionFixture {
	t.Helper()
	return newSessionFixtureLimits(t, 30*time.Minute, 12*time.Hour)
}

// newSessionFixtureLimits is newSessionFixture with other session limits
// (zero: the defaults).
func newSessionFixtureLimits(t *testing.T, idle, max time.Duration) *sessionFixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	logs := &lockedBuffer{}
	svc, err := New(t.Context(), Config{
		Store:       st,
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hasher:      newTestHasher(t, HasherConfig{}),
		Now:         c.Now,
		SessionIdle: idle,
		SessionMax:  max,
	})
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := svc.CreateUser(t.Context(), NewUser{Email: fixtureEmail, OrgName: "acme", Password: fixturePassword})
	if err != nil {
		t.Fatal(err)
	}
	return &sessionFixture{svc: svc, store: st, clock: c, user: u, logs: logs}
}

func (f *sessionFixture) login(t *testing.T) NewSession {
	t.Helper()
	ns, err := f.svc.Login(t.Context(), "  SAM@Example.com ", fixturePassword)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return ns
}

func wantInvalidSession(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidSession) {
		t.Fatalf("%s: err = %v, want ErrInvalidSession", what, err)
	}
}

func TestLoginStartsASession(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns := f.login(t)
	if len(ns.Secret) != sessionSecretLen || strings.ContainsAny(ns.Secret, "+/=") {
		t.Fatalf("secret has %d characters, want %d of base64url", len(ns.Secret), sessionSecretLen)
	}
	if want := f.clock.Now().Add(12 * time.Hour); !ns.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", ns.ExpiresAt, want)
	}
	p, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	if err != nil {
		t.Fatalf("AuthenticateSession: %v", err)
	}
	if p.Method != authn.BySession || p.SessionID == "" || p.UserID != f.user.ID || p.Email != fixtureEmail {
		t.Fatalf("principal = %+v", p)
	}
	// Stored hashed: the row holds SHA-256 of the secret, not the secret.
	ss, err := f.store.GetSessionByHash(t.Context(), hashSession(ns.Secret))
	if err != nil || ss.ID != p.SessionID || strings.Contains(string(ss.Hash), ns.Secret) {
		t.Fatalf("stored session = %+v, %v", ss, err)
	}
	// Every sign-in is a new session.
	if again := f.login(t); again.Secret == ns.Secret || again.Principal.SessionID == p.SessionID {
		t.Fatal("a second sign-in reused the session")
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	for _, c := range []struct{ email, password string }{
		{fixtureEmail, "not the password"},
		{"nobody@example.com", fixturePassword},
	} {
		if _, err := f.svc.Login(t.Context(), c.email, c.password); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("Login(%s): err = %v, want ErrInvalidCredentials", c.email, err)
		}
	}
	if n, _ := f.store.DeleteUserSessions(t.Context(), f.user.ID, ""); n != 0 {
		t.Fatalf("refused sign-ins left %d sessions", n)
	}
}

func TestAuthenticateSessionRefuses(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns := f.login(t)
	for name, secret := range map[string]string{
		"empty":           "",
		"short":           ns.Secret[:42],
		"long":            ns.Secret + "A",
		"not base64url":   "!" + ns.Secret[1:],
		"unknown":         strings.Repeat("A", sessionSecretLen),
		"token-like":      "km_" + ns.Secret[3:],
		"padding in form": ns.Secret[:41] + "==",
	} {
		_, err := f.svc.AuthenticateSession(t.Context(), secret)
		wantInvalidSession(t, name, err)
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns := f.login(t)
	// Used every 20 minutes, the session outlives the 30-minute idle limit.
	for range 5 {
		f.clock.Advance(20 * time.Minute)
		if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
			t.Fatalf("session used every 20 minutes ended: %v", err)
		}
	}
	// Left alone for the idle limit, it ends, and its row goes.
	f.clock.Advance(30 * time.Minute)
	_, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	wantInvalidSession(t, "idle session", err)
	if _, err := f.store.GetSessionByHash(t.Context(), hashSession(ns.Secret)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle session row still there: %v", err)
	}
}

// With an idle timeout under four minutes, last use is recorded every
// quarter of it (not once a minute), so a session used more often than the
// timeout stays alive: idle 1 minute, used every 40 seconds. Shown failing
// on session.go:154 `s.sessions.idle/4` → `*4` (on 7eede42): recorded once
// a minute, the session idled out on its second use.
func TestShortIdleSessionInUseStaysAlive(t *testing.T) {
	t.Parallel()
	f := newSessionFixtureLimits(t, time.Minute, 12*time.Hour)
	ns := f.login(t)
	for i := range 6 {
		f.clock.Advance(40 * time.Second)
		if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
			t.Fatalf("use %d, 40 s after the last, of a session with a 1-minute idle timeout: %v", i+1, err)
		}
	}
	f.clock.Advance(time.Minute)
	_, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	wantInvalidSession(t, "session left alone for its idle timeout", err)
}

// Left unset, a session ends after 30 minutes unused and 12 hours after
// sign-in (README: --session-idle, --session-max). Held by hand on 7eede42
// (constants, not covered by gremlins): session.go:22 `30 * time.Minute` and
// :23 `12 * time.Hour`, `*` → `/`.
func TestSessionDefaults(t *testing.T) {
	t.Parallel()
	f := newSessionFixtureLimits(t, 0, 0)
	ns := f.login(t)
	if want := f.clock.Now().Add(12 * time.Hour); !ns.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v (12 h)", ns.ExpiresAt, want)
	}
	f.clock.Advance(30*time.Minute - time.Microsecond)
	if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
		t.Fatalf("used just under 30 minutes after sign-in: %v", err)
	}
	f.clock.Advance(30 * time.Minute)
	_, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	wantInvalidSession(t, "session unused for 30 minutes", err)
}

func TestSessionTouchIsLazy(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns := f.login(t)
	seen := func() time.Time {
		ss, err := f.store.GetSessionByHash(t.Context(), hashSession(ns.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return ss.LastSeenAt
	}
	start := seen()
	f.clock.Advance(30 * time.Second)
	if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !got.Equal(start) {
		t.Fatalf("last seen written after 30s (%v), want at most once a minute", got)
	}
	f.clock.Advance(31 * time.Second)
	if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !got.Equal(f.clock.Now()) {
		t.Fatalf("last seen = %v after a minute, want %v", got, f.clock.Now())
	}
}

func TestSessionAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns := f.login(t)
	// Busy all day: used every 10 minutes, it still ends at 12 hours.
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-10*time.Minute; elapsed += 10 * time.Minute {
		f.clock.Advance(10 * time.Minute)
		if _, err := f.svc.AuthenticateSession(t.Context(), ns.Secret); err != nil {
			t.Fatalf("session ended after %v: %v", elapsed+10*time.Minute, err)
		}
	}
	f.clock.Advance(10 * time.Minute)
	_, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	wantInvalidSession(t, "session at its absolute expiry", err)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	ns, other := f.login(t), f.login(t)
	p, err := f.svc.AuthenticateSession(t.Context(), ns.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(authn.WithPrincipal(t.Context(), p)); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	_, err = f.svc.AuthenticateSession(t.Context(), ns.Secret)
	wantInvalidSession(t, "after sign-out", err)
	if _, err := f.svc.AuthenticateSession(t.Context(), other.Secret); err != nil {
		t.Fatalf("sign-out ended another session: %v", err)
	}
	// Signing out twice is fine; without a session there is nothing to end.
	if err := f.svc.Logout(authn.WithPrincipal(t.Context(), p)); err != nil {
		t.Fatalf("second Logout: %v", err)
	}
	byPassword := p
	byPassword.Method, byPassword.SessionID = authn.ByPassword, ""
	if err := f.svc.Logout(authn.WithPrincipal(t.Context(), byPassword)); fault.CodeOf(err) != fault.FailedPrecondition {
		t.Fatalf("Logout with a password: %v", err)
	}
	wantInvalidSession(t, "Logout without credentials", f.svc.Logout(context.Background()))
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	mine, phone, tablet := f.login(t), f.login(t), f.login(t)
	ctx := authn.WithPrincipal(t.Context(), mine.Principal)
	const next = "a brand new password"

	for _, c := range []struct {
		name          string
		ctx           context.Context
		current, next string
		want          fault.Code
	}{
		{"wrong current", ctx, "wrong password!", next, fault.PermissionDenied},
		{"too short", ctx, fixturePassword, "short", fault.InvalidArgument},
		{"by token", authn.WithPrincipal(t.Context(), authn.Principal{UserID: f.user.ID, OrgID: f.user.OrgID, Method: authn.ByToken}), fixturePassword, next, fault.PermissionDenied},
		{"anonymous", t.Context(), fixturePassword, next, fault.Unauthenticated},
	} {
		if _, err := f.svc.ChangePassword(c.ctx, c.current, c.next); fault.CodeOf(err) != c.want {
			t.Fatalf("%s: err = %v, want code %v", c.name, err, c.want)
		}
	}
	if _, err := f.svc.AuthenticateSession(t.Context(), phone.Secret); err != nil {
		t.Fatalf("a refused change ended a session: %v", err)
	}

	n, err := f.svc.ChangePassword(ctx, fixturePassword, next)
	if err != nil || n != 2 {
		t.Fatalf("ChangePassword = %d, %v; want 2 other sessions ended", n, err)
	}
	if _, err := f.svc.AuthenticateSession(t.Context(), mine.Secret); err != nil {
		t.Fatalf("the changing session ended: %v", err)
	}
	for _, other := range []NewSession{phone, tablet} {
		_, err := f.svc.AuthenticateSession(t.Context(), other.Secret)
		wantInvalidSession(t, "other session after a password change", err)
	}
	if _, err := f.svc.Authenticate(t.Context(), fixtureEmail, fixturePassword); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	if _, err := f.svc.Authenticate(t.Context(), fixtureEmail, next); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	// With email + password (no session), every session ends.
	byPassword := authn.WithPrincipal(t.Context(), authn.Principal{UserID: f.user.ID, OrgID: f.user.OrgID, Method: authn.ByPassword})
	if n, err := f.svc.ChangePassword(byPassword, next, fixturePassword); err != nil || n != 1 {
		t.Fatalf("ChangePassword by password = %d, %v; want 1", n, err)
	}
	_, err = f.svc.AuthenticateSession(t.Context(), mine.Secret)
	wantInvalidSession(t, "session after a password change by password", err)
}

// A sign-in more than purgeEvery after the last purge deletes the expired
// sessions, and says how many at debug level only when there were some.
// The log check was shown failing on session.go:113 `n > 0` → `>= 0` and
// → `<= 0` (on 7eede42).
func TestLoginPurgesExpiredSessions(t *testing.T) {
	t.Parallel()
	f := newSessionFixture(t)
	old := f.login(t) // its purge finds nothing
	f.clock.Advance(13 * time.Hour)
	f.login(t) // more than purgeEvery after the first sign-in's purge
	if _, err := f.store.GetSessionByHash(t.Context(), hashSession(old.Secret)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session not purged at sign-in: %v", err)
	}
	var purged []string
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var e struct {
			Level, Msg string
			Count      int
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.Msg == "purged expired sessions" {
			purged = append(purged, fmt.Sprintf("%s %d", e.Level, e.Count))
		}
	}
	if fmt.Sprint(purged) != "[DEBUG 1]" {
		t.Errorf("purge log lines %q, want one at DEBUG with count 1 (none for the purge that found nothing)", purged)
	}
}

// raceStore is the real store with a step run (once) just after a session
// is read: the moment an admin's action lands between AuthenticateSession's
// session lookup and its user lookup.
type raceStore struct {
	Store
	afterSessionRead func()
}

func (r *raceStore) GetSessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	ss, err := r.Store.GetSessionByHash(ctx, hash)
	if step := r.afterSessionRead; step != nil {
		r.afterSessionRead = nil
		step()
	}
	return ss, err
}

// A session read just before an admin disables or deletes its user (which
// ends the user's sessions) is refused all the same: the user is read after
// the session and checked. Shown failing on session.go:144 `err == nil &&
// (...)` → `err != nil && (...)` (on 7eede42): the session of a disabled
// or deleted user authenticated once more.
func TestSessionReadBeforeRemovalRefused(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	rs := &raceStore{Store: f.store}
	svc, err := New(t.Context(), Config{Store: rs, Hasher: f.hasher, Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what   string
		remove func() error
	}{
		{"disabled", func() error { _, err := f.svc.DisableUser(as(f.admin), f.member.ID); return err }},
		{"deleted", func() error { _, err := f.svc.DeleteUser(as(f.admin), f.member.ID); return err }},
	} {
		if _, err := f.svc.EnableUser(as(f.admin), f.member.ID); err != nil { // after the first case
			t.Fatal(err)
		}
		ns, err := svc.Login(t.Context(), f.member.Email, fixturePassword)
		if err != nil {
			t.Fatal(err)
		}
		var removeErr error
		rs.afterSessionRead = func() { removeErr = c.remove() }
		_, err = svc.AuthenticateSession(t.Context(), ns.Secret)
		if removeErr != nil {
			t.Fatal(removeErr)
		}
		if !errors.Is(err, ErrInvalidSession) {
			t.Errorf("a session read just before its user was %s: %v, want ErrInvalidSession", c.what, err)
		}
	}
}

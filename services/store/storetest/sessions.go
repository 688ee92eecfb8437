package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

func newSession(userID string, created time.Time) store.Session {
	return store.Session{
		ID:         uuid.NewString(),
		UserID:     userID,
		Hash:       randomBytes(32),
		CreatedAt:  created,
		LastSeenAt: created,
		ExpiresAt:  created.Add(12 * time.Hour),
	}
}

func createSessions(t *testing.T, s store.Store, sessions ...store.Session) {
	t.Helper()
	for _, ss := range sessions {
		if err := s.CreateSession(t.Context(), ss); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
}

func checkSession(t *testing.T, what string, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || !bytes.Equal(got.Hash, want.Hash) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	checkTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, what+": LastSeenAt", got.LastSeenAt, want.LastSeenAt)
	checkTime(t, what+": ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

// sessionGone checks that the session with hash no longer exists.
func sessionGone(t *testing.T, s store.Store, what string, hash []byte) {
	t.Helper()
	_, err := s.GetSessionByHash(t.Context(), hash)
	checkErr(t, what, err, store.ErrNotFound)
}

func testSessionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, u := newOrgUser(t, s, "acme", "alice@example.com")
	zone := time.FixedZone("UTC-3", -3*3600)
	want := newSession(u.ID, base.Add(789*time.Nanosecond).In(zone))
	want.LastSeenAt = base.Add(time.Minute)
	want.ExpiresAt = base.Add(12 * time.Hour).In(zone)
	other := newSession(u.ID, base)
	createSessions(t, s, want, other)
	checkSession(t, "GetSessionByHash", must(s.GetSessionByHash(ctx, bytes.Clone(want.Hash)))(t), want)
	checkSession(t, "GetSessionByHash(other)", must(s.GetSessionByHash(ctx, other.Hash))(t), other)

	// An unset last-seen time starts at the creation time.
	fresh := newSession(u.ID, base)
	fresh.LastSeenAt = time.Time{}
	createSessions(t, s, fresh)
	fresh.LastSeenAt = base
	checkSession(t, "GetSessionByHash(fresh)", must(s.GetSessionByHash(ctx, fresh.Hash))(t), fresh)

	for name, hash := range map[string][]byte{"unknown": randomBytes(32), "prefix": want.Hash[:16], "empty": {}, "nil": nil} {
		sessionGone(t, s, "GetSessionByHash("+name+")", hash)
	}
	sameID := newSession(u.ID, base)
	sameID.ID = want.ID
	checkErr(t, "CreateSession(same id)", s.CreateSession(ctx, sameID), store.ErrAlreadyExists)
	sameHash := newSession(u.ID, base)
	sameHash.Hash = bytes.Clone(want.Hash)
	checkErr(t, "CreateSession(same hash)", s.CreateSession(ctx, sameHash), store.ErrAlreadyExists)
}

func testTouchSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, u := newOrgUser(t, s, "acme", "alice@example.com")
	ss := newSession(u.ID, base)
	createSessions(t, s, ss)
	later := base.Add(5*time.Minute + 3*time.Microsecond)
	if err := s.TouchSession(ctx, ss.ID, later); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	checkTime(t, "LastSeenAt after touch", must(s.GetSessionByHash(ctx, ss.Hash))(t).LastSeenAt, later)
	// A late, stale touch (another replica) never moves it back.
	if err := s.TouchSession(ctx, ss.ID, base.Add(time.Minute)); err != nil {
		t.Fatalf("TouchSession(stale): %v", err)
	}
	got := must(s.GetSessionByHash(ctx, ss.Hash))(t)
	checkTime(t, "LastSeenAt after stale touch", got.LastSeenAt, later)
	checkTime(t, "ExpiresAt after touch", got.ExpiresAt, ss.ExpiresAt)
	checkErr(t, "TouchSession(unknown)", s.TouchSession(ctx, uuid.NewString(), later), store.ErrNotFound)
}

func testDeleteSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, u := newOrgUser(t, s, "acme", "alice@example.com")
	gone, kept := newSession(u.ID, base), newSession(u.ID, base)
	createSessions(t, s, gone, kept)
	if err := s.DeleteSession(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	sessionGone(t, s, "GetSessionByHash(deleted)", gone.Hash)
	checkSession(t, "GetSessionByHash(kept)", must(s.GetSessionByHash(ctx, kept.Hash))(t), kept)
	checkErr(t, "DeleteSession(again)", s.DeleteSession(ctx, gone.ID), store.ErrNotFound)
}

func testDeleteUserSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, org.ID, "bob@example.com")
	a1, a2, a3 := newSession(alice.ID, base), newSession(alice.ID, base), newSession(alice.ID, base)
	b1 := newSession(bob.ID, base)
	createSessions(t, s, a1, a2, a3, b1)

	if n := must(s.DeleteUserSessions(ctx, alice.ID, a2.ID))(t); n != 2 {
		t.Errorf("DeleteUserSessions(alice except a2) = %d, want 2", n)
	}
	sessionGone(t, s, "a1", a1.Hash)
	sessionGone(t, s, "a3", a3.Hash)
	checkSession(t, "a2 (kept)", must(s.GetSessionByHash(ctx, a2.Hash))(t), a2)
	checkSession(t, "b1 (other user)", must(s.GetSessionByHash(ctx, b1.Hash))(t), b1)

	if n := must(s.DeleteUserSessions(ctx, alice.ID, ""))(t); n != 1 {
		t.Errorf("DeleteUserSessions(alice, all) = %d, want 1", n)
	}
	sessionGone(t, s, "a2", a2.Hash)
	if n := must(s.DeleteUserSessions(ctx, alice.ID, ""))(t); n != 0 {
		t.Errorf("DeleteUserSessions(alice, none left) = %d, want 0", n)
	}
	checkSession(t, "b1 (other user)", must(s.GetSessionByHash(ctx, b1.Hash))(t), b1)
}

func testDeleteExpiredSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, u := newOrgUser(t, s, "acme", "alice@example.com")
	now := base.Add(24 * time.Hour)
	idleSince := now.Add(-30 * time.Minute)
	mk := func(edit func(*store.Session)) store.Session {
		ss := newSession(u.ID, base)
		ss.LastSeenAt = now.Add(-time.Minute)
		ss.ExpiresAt = now.Add(time.Hour)
		edit(&ss)
		createSessions(t, s, ss)
		return ss
	}
	live := mk(func(*store.Session) {})
	expired := mk(func(ss *store.Session) { ss.ExpiresAt = now })
	idle := mk(func(ss *store.Session) { ss.LastSeenAt = idleSince })
	justLive := mk(func(ss *store.Session) {
		ss.ExpiresAt = now.Add(time.Microsecond)
		ss.LastSeenAt = idleSince.Add(time.Microsecond)
	})
	if n := must(s.DeleteExpiredSessions(ctx, now, idleSince))(t); n != 2 {
		t.Errorf("DeleteExpiredSessions = %d, want 2", n)
	}
	sessionGone(t, s, "expired", expired.Hash)
	sessionGone(t, s, "idle", idle.Hash)
	checkSession(t, "live", must(s.GetSessionByHash(ctx, live.Hash))(t), live)
	checkSession(t, "just live", must(s.GetSessionByHash(ctx, justLive.Hash))(t), justLive)
}

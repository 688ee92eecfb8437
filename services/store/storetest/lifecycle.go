package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// limitedToken is a token with every lifecycle field set, drawing uses from
// its own counter.
func limitedToken(orgID, userID string, uses int64) store.Token {
	t := newToken(orgID, userID, base)
	t.ExternalID = "user-42"
	t.Metadata = []byte(`{"plan":"pro","n":1}`)
	t.AllowedCIDRs = []string{"10.0.0.0/8", "2001:db8::/32"}
	t.UsagePool = t.ID
	t.RemainingUses = uses
	t.RateLimit = 100
	t.RatePeriod = time.Minute
	return t
}

func checkLifecycle(t *testing.T, what string, got, want store.Token) {
	t.Helper()
	checkToken(t, what, got, want)
	if got.ExternalID != want.ExternalID || !bytes.Equal(got.Metadata, want.Metadata) ||
		!slices.Equal(got.AllowedCIDRs, want.AllowedCIDRs) || got.UsagePool != want.UsagePool ||
		got.RemainingUses != want.RemainingUses || got.RateLimit != want.RateLimit ||
		got.RatePeriod != want.RatePeriod || got.RotatedToID != want.RotatedToID {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

func testTokenLifecycleFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	want := limitedToken(org.ID, u.ID, 10)
	if err := s.CreateToken(ctx, want); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	checkLifecycle(t, "GetToken", must(s.GetToken(ctx, want.ID))(t), want)
	checkLifecycle(t, "GetTokenByDigest", must(s.GetTokenByDigest(ctx, [][]byte{want.Digest}))(t), want)

	// A token drawing from another's pool keeps no counter of its own.
	other := newToken(org.ID, u.ID, base)
	other.UsagePool = want.ID
	other.RemainingUses = 99 // ignored: not the pool's row
	if err := s.CreateToken(ctx, other); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	got := must(s.GetToken(ctx, other.ID))(t)
	if got.UsagePool != want.ID || got.RemainingUses != 0 || got.Metadata != nil || got.AllowedCIDRs != nil {
		t.Errorf("pool member = %+v", got)
	}
	_, _, err := s.TakeTokenUses(ctx, other.ID, 1)
	checkErr(t, "TakeTokenUses(not a pool)", err, store.ErrConflict)
}

func testRotateToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	old := limitedToken(org.ID, u.ID, 5)
	old.ExpiresAt = base.Add(48 * time.Hour)
	if err := s.CreateToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	succ := limitedToken(org.ID, u.ID, 0)
	succ.UsagePool = old.ID
	succ.ExpiresAt = old.ExpiresAt
	graceEnd := base.Add(time.Hour)
	got, err := s.RotateToken(ctx, old.ID, succ, graceEnd)
	if err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	want := old
	want.RotatedToID = succ.ID
	want.ExpiresAt = graceEnd
	checkLifecycle(t, "RotateToken", got, want)
	checkLifecycle(t, "GetToken(old)", must(s.GetToken(ctx, old.ID))(t), want)
	succ.RemainingUses = 0
	checkLifecycle(t, "GetToken(successor)", must(s.GetToken(ctx, succ.ID))(t), succ)

	// Rotated already: nothing changes, the successor is not inserted.
	again := newToken(org.ID, u.ID, base)
	_, err = s.RotateToken(ctx, old.ID, again, base)
	checkErr(t, "RotateToken(rotated)", err, store.ErrConflict)
	_, err = s.GetToken(ctx, again.ID)
	checkErr(t, "GetToken(refused successor)", err, store.ErrNotFound)
	checkLifecycle(t, "GetToken(old) after a refused rotation", must(s.GetToken(ctx, old.ID))(t), want)

	// The grace end never raises an expiry.
	short := newToken(org.ID, u.ID, base)
	short.ExpiresAt = base.Add(time.Minute)
	if err := s.CreateToken(ctx, short); err != nil {
		t.Fatal(err)
	}
	got = must(s.RotateToken(ctx, short.ID, newToken(org.ID, u.ID, base), base.Add(time.Hour)))(t)
	checkTime(t, "expiry of a token rotated with a longer grace", got.ExpiresAt, short.ExpiresAt)

	// No expiry: the grace end becomes it.
	forever := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, forever); err != nil {
		t.Fatal(err)
	}
	got = must(s.RotateToken(ctx, forever.ID, newToken(org.ID, u.ID, base), base.Add(time.Hour)))(t)
	checkTime(t, "expiry of a never-expiring token rotated", got.ExpiresAt, base.Add(time.Hour))

	revoked := newToken(org.ID, u.ID, base)
	revoked.RevokedAt = base
	if err := s.CreateToken(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateToken(ctx, revoked.ID, newToken(org.ID, u.ID, base), base)
	checkErr(t, "RotateToken(revoked)", err, store.ErrConflict)
	_, err = s.RotateToken(ctx, uuid.NewString(), newToken(org.ID, u.ID, base), base)
	checkErr(t, "RotateToken(unknown)", err, store.ErrNotFound)
	dup := newToken(org.ID, u.ID, base)
	dup.Digest = bytes.Clone(old.Digest)
	fresh := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateToken(ctx, fresh.ID, dup, base)
	checkErr(t, "RotateToken(successor digest taken)", err, store.ErrAlreadyExists)
	if got := must(s.GetToken(ctx, fresh.ID))(t); got.RotatedToID != "" {
		t.Errorf("a failed rotation left rotated_to_id %q", got.RotatedToID)
	}
}

// Concurrent rotations of one token: exactly one wins.
func testRotateTokenConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	old := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := s.RotateToken(ctx, old.ID, newToken(org.ID, u.ID, base), base.Add(time.Hour))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("RotateToken: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 7 {
		t.Fatalf("8 concurrent rotations: %d won, %d conflicted; want 1 and 7", wins.Load(), conflicts.Load())
	}
}

func testTakeTokenUses(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	tok := limitedToken(org.ID, u.ID, 5)
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ n, taken, left int64 }{{1, 1, 4}, {3, 3, 1}, {3, 1, 0}, {1, 0, 0}, {2, 0, 0}} {
		taken, left, err := s.TakeTokenUses(ctx, tok.ID, c.n)
		if err != nil || taken != c.taken || left != c.left {
			t.Fatalf("TakeTokenUses(%d) = %d, %d, %v; want %d, %d", c.n, taken, left, err, c.taken, c.left)
		}
	}
	if got := must(s.GetToken(ctx, tok.ID))(t); got.RemainingUses != 0 {
		t.Errorf("RemainingUses = %d after taking all", got.RemainingUses)
	}
	plain := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, plain); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.TakeTokenUses(ctx, plain.ID, 1)
	checkErr(t, "TakeTokenUses(unlimited)", err, store.ErrConflict)
	_, _, err = s.TakeTokenUses(ctx, uuid.NewString(), 1)
	checkErr(t, "TakeTokenUses(unknown)", err, store.ErrNotFound)
}

// Concurrent takers never get more uses than the counter held.
func testTakeTokenUsesConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	tok := limitedToken(org.ID, u.ID, 25)
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for range 4 {
				taken, _, err := s.TakeTokenUses(ctx, tok.ID, int64(1+i%3))
				if err != nil {
					t.Errorf("TakeTokenUses: %v", err)
					return
				}
				total.Add(taken)
			}
		})
	}
	wg.Wait()
	if total.Load() != 25 {
		t.Fatalf("concurrent takers got %d uses of 25", total.Load())
	}
}

func testOrgPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	org := must(s.EnsureOrg(ctx, "acme"))(t)
	if p := org.Policy; p.AllowedScopes != nil || p.MaxTokenLifetime != 0 || p.DefaultTokenLifetime != 0 || p.MaxRotationGrace != 0 {
		t.Errorf("new org's policy = %+v, want none", p)
	}
	want := store.OrgPolicy{
		AllowedScopes:        []string{"deploy:read", "deploy:write"},
		MaxTokenLifetime:     90 * 24 * time.Hour,
		DefaultTokenLifetime: 30 * 24 * time.Hour,
		MaxRotationGrace:     time.Hour + time.Microsecond,
	}
	got := must(s.UpdateOrgPolicy(ctx, org.ID, want))(t)
	for what, o := range map[string]store.Org{
		"UpdateOrgPolicy": got,
		"GetOrg":          must(s.GetOrg(ctx, org.ID))(t),
		"EnsureOrg":       must(s.EnsureOrg(ctx, "acme"))(t),
	} {
		p := o.Policy
		if o.ID != org.ID || !slices.Equal(p.AllowedScopes, want.AllowedScopes) || p.MaxTokenLifetime != want.MaxTokenLifetime ||
			p.DefaultTokenLifetime != want.DefaultTokenLifetime || p.MaxRotationGrace != want.MaxRotationGrace {
			t.Errorf("%s = %+v, want policy %+v", what, o, want)
		}
	}
	got = must(s.UpdateOrgPolicy(ctx, org.ID, store.OrgPolicy{}))(t)
	if got.Policy.AllowedScopes != nil || got.Policy.MaxTokenLifetime != 0 {
		t.Errorf("cleared policy = %+v", got.Policy)
	}
	_, err := s.UpdateOrgPolicy(ctx, uuid.NewString(), want)
	checkErr(t, "UpdateOrgPolicy(unknown)", err, store.ErrNotFound)
}

func testUserScopes(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	if alice := must(s.GetUser(ctx, alice.ID))(t); alice.Scopes != nil {
		t.Errorf("new user's scopes = %q, want none", alice.Scopes)
	}
	bob := store.User{ID: uuid.NewString(), OrgID: org.ID, Email: "bob@example.com", PasswordHash: "h",
		Scopes: []string{"a", "b"}, CreatedAt: base}
	if err := s.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if got := must(s.GetUserByEmail(ctx, bob.Email))(t); !slices.Equal(got.Scopes, bob.Scopes) {
		t.Errorf("bob's scopes = %q, want %q", got.Scopes, bob.Scopes)
	}
	if err := s.UpdateUserScopes(ctx, alice.ID, []string{"deploy:read"}); err != nil {
		t.Fatal(err)
	}
	if got := must(s.GetUser(ctx, alice.ID))(t); !slices.Equal(got.Scopes, []string{"deploy:read"}) {
		t.Errorf("alice's scopes = %q", got.Scopes)
	}
	if got := must(s.GetUser(ctx, bob.ID))(t); !slices.Equal(got.Scopes, bob.Scopes) {
		t.Errorf("bob's scopes changed to %q", got.Scopes)
	}
	if err := s.UpdateUserScopes(ctx, alice.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := must(s.GetUser(ctx, alice.ID))(t); got.Scopes != nil {
		t.Errorf("cleared scopes = %q", got.Scopes)
	}
	checkErr(t, "UpdateUserScopes(unknown)", s.UpdateUserScopes(ctx, uuid.NewString(), nil), store.ErrNotFound)
}

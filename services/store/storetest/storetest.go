// Package storetest is the conformance suite for store.Store: every backend
// runs the same tests, so the backends cannot drift apart.
package storetest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// Run runs the suite. newStore must return an empty, migrated store that it
// closes in t.Cleanup; each subtest gets its own, so subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"EnsureOrgIdempotent", testEnsureOrgIdempotent},
		{"EnsureOrgConcurrent", testEnsureOrgConcurrent},
		{"GetOrgNotFound", testGetOrgNotFound},
		{"UserRoundTrip", testUserRoundTrip},
		{"CreateUserDuplicate", testCreateUserDuplicate},
		{"UserNotFound", testUserNotFound},
		{"UpdatePasswordHash", testUpdatePasswordHash},
		{"TokenRoundTrip", testTokenRoundTrip},
		{"TokenZeroTimes", testTokenZeroTimes},
		{"TokenScopes", testTokenScopes},
		{"CreateTokenDuplicate", testCreateTokenDuplicate},
		{"GetTokenNotFound", testGetTokenNotFound},
		{"GetTokenByDigest", testGetTokenByDigest},
		{"ListTokensFilter", testListTokensFilter},
		{"ListTokensActive", testListTokensActive},
		{"ListTokensPaging", testListTokensPaging},
		{"ListTokensBadCursor", testListTokensBadCursor},
		{"ListTokensSearch", testListTokensSearch},
		{"ListTokensOrder", testListTokensOrder},
		{"AuditFilters", testAuditFilters},
		{"RevokeToken", testRevokeToken},
		{"TouchTokens", testTouchTokens},
		{"TokenLifecycleFields", testTokenLifecycleFields},
		{"RotateToken", testRotateToken},
		{"RotateTokenConcurrent", testRotateTokenConcurrent},
		{"TakeTokenUses", testTakeTokenUses},
		{"TakeTokenUsesConcurrent", testTakeTokenUsesConcurrent},
		{"OrgPolicy", testOrgPolicy},
		{"UserScopes", testUserScopes},
		{"SessionRoundTrip", testSessionRoundTrip},
		{"TouchSession", testTouchSession},
		{"DeleteSession", testDeleteSession},
		{"DeleteUserSessions", testDeleteUserSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditPaging", testAuditPaging},
		{"RevocationLog", testRevocationLog},
		{"RevocationLogSameTransaction", testRevocationLogSameTransaction},
		{"RevocationLogConcurrent", testRevocationLogConcurrent},
		{"AuditDetails", testAuditDetails},
		{"AuditSubject", testAuditSubject},
		{"LeakReports", testLeakReports},
		{"TokensByDigests", testTokensByDigests},
		{"WebhookEndpoints", testWebhookEndpoints},
		{"OutboxFanOut", testOutboxFanOut},
		{"OutboxClaimFinish", testOutboxClaimFinish},
		{"OutboxClaimConcurrent", testOutboxClaimConcurrent},
		{"ExpiryNotices", testExpiryNotices},
		{"ExpiryWindowsPerOrg", testExpiryWindowsPerOrg},
		{"ListUsers", testListUsers},
		{"ServiceAccounts", testServiceAccounts},
		{"DisableUser", testDisableUser},
		{"DisableUserConcurrentMint", testDisableUserConcurrentMint},
		{"DeleteUser", testDeleteUser},
		{"SetUserAdmin", testSetUserAdmin},
		{"PasswordReset", testPasswordReset},
		{"Orgs", testOrgs},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// base is a fixed instant with microsecond precision, the finest every
// backend keeps.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

func testEnsureOrgIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	a1 := must(s.EnsureOrg(ctx, "acme"))(t)
	if a1.ID == "" || a1.Name != "acme" || a1.CreatedAt.IsZero() {
		t.Fatalf("EnsureOrg = %+v, want id, name acme and a creation time", a1)
	}
	checkUTC(t, "CreatedAt", a1.CreatedAt)
	a2 := must(s.EnsureOrg(ctx, "acme"))(t)
	if a2.ID != a1.ID || !a2.CreatedAt.Equal(a1.CreatedAt) {
		t.Errorf("second EnsureOrg = %+v, want %+v", a2, a1)
	}
	b := must(s.EnsureOrg(ctx, "globex"))(t)
	if b.ID == a1.ID {
		t.Errorf("orgs acme and globex share id %s", b.ID)
	}
	got := must(s.GetOrg(ctx, a1.ID))(t)
	if got.ID != a1.ID || got.Name != a1.Name || !got.CreatedAt.Equal(a1.CreatedAt) {
		t.Errorf("GetOrg = %+v, want %+v", got, a1)
	}
}

func testEnsureOrgConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		ids   = make([]string, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			o, err := s.EnsureOrg(ctx, "race")
			ids[i], errs[i] = o.ID, err
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent EnsureOrg: %v", err)
	}
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("goroutine %d got org %s, goroutine 0 got %s", i, id, ids[0])
		}
	}
}

func testGetOrgNotFound(t *testing.T, s store.Store) {
	_, err := s.GetOrg(t.Context(), uuid.NewString())
	checkErr(t, "GetOrg(unknown)", err, store.ErrNotFound)
}

func testUserRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	org := must(s.EnsureOrg(ctx, "acme"))(t)
	for _, admin := range []bool{true, false} {
		want := store.User{
			ID:           uuid.NewString(),
			OrgID:        org.ID,
			Email:        fmt.Sprintf("user-%t@example.com", admin),
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
			Admin:        admin,
			CreatedAt:    base,
		}
		if err := s.CreateUser(ctx, want); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		checkUser(t, "GetUser", must(s.GetUser(ctx, want.ID))(t), want)
		checkUser(t, "GetUserByEmail", must(s.GetUserByEmail(ctx, want.Email))(t), want)
	}
}

func testCreateUserDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, u := newOrgUser(t, s, "acme", "dup@example.com")
	other := u
	other.ID = uuid.NewString()
	checkErr(t, "CreateUser(same email)", s.CreateUser(ctx, other), store.ErrAlreadyExists)
	other = u
	other.Email = "other@example.com"
	checkErr(t, "CreateUser(same id)", s.CreateUser(ctx, other), store.ErrAlreadyExists)
}

func testUserNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	newOrgUser(t, s, "acme", "alice@example.com")
	_, err := s.GetUser(ctx, uuid.NewString())
	checkErr(t, "GetUser(unknown)", err, store.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "bob@example.com")
	checkErr(t, "GetUserByEmail(unknown)", err, store.ErrNotFound)
	// Callers normalize emails; the store matches exactly.
	_, err = s.GetUserByEmail(ctx, "ALICE@example.com")
	checkErr(t, "GetUserByEmail(other case)", err, store.ErrNotFound)
}

func testUpdatePasswordHash(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, org.ID, "bob@example.com")
	if err := s.UpdatePasswordHash(ctx, alice.ID, "new-hash"); err != nil {
		t.Fatalf("UpdatePasswordHash: %v", err)
	}
	if got := must(s.GetUser(ctx, alice.ID))(t); got.PasswordHash != "new-hash" {
		t.Errorf("alice's hash = %q, want new-hash", got.PasswordHash)
	}
	if got := must(s.GetUser(ctx, bob.ID))(t); got.PasswordHash != bob.PasswordHash {
		t.Errorf("bob's hash changed to %q", got.PasswordHash)
	}
	checkErr(t, "UpdatePasswordHash(unknown)", s.UpdatePasswordHash(ctx, uuid.NewString(), "x"), store.ErrNotFound)
}

func testTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	// Nanoseconds and a non-UTC zone on the way in: the store keeps at
	// least microseconds and hands back UTC.
	zone := time.FixedZone("UTC+5", 5*3600)
	want := newToken(org.ID, u.ID, base.Add(789*time.Nanosecond).In(zone))
	want.Description = "deploys from CI"
	want.Scopes = []string{"tokens:read", "tokens:write"}
	want.ExpiresAt = base.Add(90 * 24 * time.Hour).In(zone)
	want.LastUsedAt = base.Add(time.Hour + 999*time.Nanosecond)
	want.RevokedAt = base.Add(2*time.Hour + time.Microsecond)
	if err := s.CreateToken(ctx, want); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	checkToken(t, "GetToken", must(s.GetToken(ctx, want.ID))(t), want)
}

func testTokenZeroTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	want := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, want); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	got := must(s.GetToken(ctx, want.ID))(t)
	for name, v := range map[string]time.Time{"ExpiresAt": got.ExpiresAt, "LastUsedAt": got.LastUsedAt, "RevokedAt": got.RevokedAt} {
		if !v.IsZero() {
			t.Errorf("%s = %v, want zero", name, v)
		}
	}
	checkToken(t, "GetToken", got, want)
}

func testTokenScopes(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	for _, scopes := range [][]string{
		nil,
		{},
		{"read"},
		{"b", "a", "c"}, // order is kept, not sorted
		{"with,comma", `with "quotes"`, "with space", "{braces}", "ünïcode", ""},
	} {
		want := newToken(org.ID, u.ID, base)
		want.Scopes = scopes
		if err := s.CreateToken(ctx, want); err != nil {
			t.Fatalf("CreateToken(scopes %q): %v", scopes, err)
		}
		got := must(s.GetToken(ctx, want.ID))(t)
		// nil and empty are the same set of scopes.
		if len(got.Scopes) != len(scopes) || (len(scopes) > 0 && !slices.Equal(got.Scopes, scopes)) {
			t.Errorf("scopes %q came back as %q", scopes, got.Scopes)
		}
	}
}

func testCreateTokenDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	tok := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	sameID := newToken(org.ID, u.ID, base)
	sameID.ID = tok.ID
	checkErr(t, "CreateToken(same id)", s.CreateToken(ctx, sameID), store.ErrAlreadyExists)
	sameDigest := newToken(org.ID, u.ID, base)
	sameDigest.Digest = bytes.Clone(tok.Digest)
	checkErr(t, "CreateToken(same digest)", s.CreateToken(ctx, sameDigest), store.ErrAlreadyExists)
}

func testGetTokenNotFound(t *testing.T, s store.Store) {
	_, err := s.GetToken(t.Context(), uuid.NewString())
	checkErr(t, "GetToken(unknown)", err, store.ErrNotFound)
}

func testGetTokenByDigest(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	want := newToken(org.ID, u.ID, base)
	other := newToken(org.ID, u.ID, base)
	for _, tok := range []store.Token{want, other} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
	}
	// One digest per pepper in the key ring; only one was used at minting.
	got := must(s.GetTokenByDigest(ctx, [][]byte{randomBytes(32), bytes.Clone(want.Digest), randomBytes(32)}))(t)
	checkToken(t, "GetTokenByDigest", got, want)

	for name, digests := range map[string][][]byte{
		"no match": {randomBytes(32), randomBytes(32)},
		"prefix":   {want.Digest[:16]},
		"empty":    {},
		"nil":      nil,
	} {
		_, err := s.GetTokenByDigest(ctx, digests)
		checkErr(t, "GetTokenByDigest("+name+")", err, store.ErrNotFound)
	}
}

func testListTokensFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, acme.ID, "bob@example.com")
	globex, carol := newOrgUser(t, s, "globex", "carol@example.com")
	aliceTokens := createTokens(t, s, acme.ID, alice.ID, 2)
	bobTokens := createTokens(t, s, acme.ID, bob.ID, 1)
	carolTokens := createTokens(t, s, globex.ID, carol.ID, 1)

	for _, tc := range []struct {
		name string
		f    store.TokenFilter
		want []store.Token
	}{
		{"acme", store.TokenFilter{OrgID: acme.ID}, slices.Concat(aliceTokens, bobTokens)},
		{"alice", store.TokenFilter{OrgID: acme.ID, UserID: alice.ID}, aliceTokens},
		{"bob", store.TokenFilter{OrgID: acme.ID, UserID: bob.ID}, bobTokens},
		{"globex", store.TokenFilter{OrgID: globex.ID}, carolTokens},
		// The org and the user must both match: naming another org's user
		// never crosses the tenant boundary.
		{"carol in acme", store.TokenFilter{OrgID: acme.ID, UserID: carol.ID}, nil},
		{"alice in globex", store.TokenFilter{OrgID: globex.ID, UserID: alice.ID}, nil},
		{"unknown org", store.TokenFilter{OrgID: uuid.NewString()}, nil},
	} {
		got := must(s.ListTokens(ctx, tc.f))(t)
		checkIDs(t, "ListTokens("+tc.name+")", got, sorted(tc.want))
		for _, tok := range got {
			if tok.OrgID != tc.f.OrgID || (tc.f.UserID != "" && tok.UserID != tc.f.UserID) {
				t.Errorf("ListTokens(%s) returned token %s of org %s user %s", tc.name, tok.ID, tok.OrgID, tok.UserID)
			}
		}
	}
	// Full rows, not just ids.
	got := must(s.ListTokens(ctx, store.TokenFilter{OrgID: acme.ID, UserID: bob.ID}))(t)
	checkToken(t, "ListTokens(bob)", got[0], bobTokens[0])
}

func testListTokensActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	now := base.Add(24 * time.Hour)
	mk := func(name string, created time.Time, edit func(*store.Token)) store.Token {
		tok := newToken(org.ID, u.ID, created)
		tok.Name = name
		edit(&tok)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", name, err)
		}
		return tok
	}
	live := mk("live", base, func(*store.Token) {})
	later := mk("expires later", base.Add(time.Second), func(t *store.Token) { t.ExpiresAt = now.Add(time.Microsecond) })
	expired := mk("expired", base.Add(2*time.Second), func(t *store.Token) { t.ExpiresAt = now.Add(-time.Microsecond) })
	revoked := mk("revoked", base.Add(3*time.Second), func(t *store.Token) { t.RevokedAt = base.Add(time.Hour) })
	toRevoke := mk("revoked via RevokeToken", base.Add(4*time.Second), func(*store.Token) {})
	must(s.RevokeToken(ctx, toRevoke.ID, base.Add(time.Hour)))(t)

	all := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, Now: now}))(t)
	checkIDs(t, "ListTokens(all)", all, sorted([]store.Token{live, later, expired, revoked, toRevoke}))
	active := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, UserID: u.ID, Active: true, Now: now}))(t)
	checkIDs(t, "ListTokens(active)", active, sorted([]store.Token{live, later}))
	// Before the expiry, the expired token counts as active again.
	earlier := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, Active: true, Now: base}))(t)
	checkIDs(t, "ListTokens(active at base)", earlier, sorted([]store.Token{live, later, expired}))
}

func testListTokensPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, acme.ID, "bob@example.com")
	var aliceTokens, all []store.Token
	// Five tokens share one creation time, so pages must split ties by id.
	for i, created := range []time.Time{
		base, base, base, base, base,
		base.Add(time.Second), base.Add(-time.Second), base.Add(time.Microsecond), base.Add(-time.Hour),
	} {
		owner := alice.ID
		if i%3 == 2 {
			owner = bob.ID
		}
		tok := newToken(acme.ID, owner, created)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		all = append(all, tok)
		if owner == alice.ID {
			aliceTokens = append(aliceTokens, tok)
		}
	}
	// A revoked token among the ties: the Active pages must step over it.
	revoked := all[3]
	must(s.RevokeToken(ctx, revoked.ID, base))(t)
	active := slices.DeleteFunc(slices.Clone(all), func(tok store.Token) bool { return tok.ID == revoked.ID })
	// Noise in another org must not show up or shift pages.
	globex, carol := newOrgUser(t, s, "globex", "carol@example.com")
	createTokens(t, s, globex.ID, carol.ID, 3)

	for _, tc := range []struct {
		name string
		f    store.TokenFilter
		want []store.Token
	}{
		{"org", store.TokenFilter{OrgID: acme.ID}, all},
		{"user", store.TokenFilter{OrgID: acme.ID, UserID: alice.ID}, aliceTokens},
		{"active", store.TokenFilter{OrgID: acme.ID, Active: true, Now: base}, active},
	} {
		want := sorted(tc.want)
		for _, limit := range []int{0, 1, 2, 3, len(want), len(want) + 1} {
			var got []store.Token
			f := tc.f
			f.Limit = limit
			for page := 0; ; page++ {
				if page > len(want)+1 {
					t.Fatalf("ListTokens(%s, limit %d) does not end", tc.name, limit)
				}
				p := must(s.ListTokens(ctx, f))(t)
				if limit > 0 && len(p) > limit {
					t.Fatalf("ListTokens(%s, limit %d) returned %d tokens", tc.name, limit, len(p))
				}
				got = append(got, p...)
				if limit == 0 || len(p) < limit {
					break
				}
				f.AfterID = p[len(p)-1].ID
			}
			checkIDs(t, fmt.Sprintf("ListTokens(%s) in pages of %d", tc.name, limit), got, want)
		}
	}
}

func testListTokensBadCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, acme.ID, "bob@example.com")
	globex, carol := newOrgUser(t, s, "globex", "carol@example.com")
	createTokens(t, s, acme.ID, alice.ID, 2)
	bobs := createTokens(t, s, acme.ID, bob.ID, 1)
	carols := createTokens(t, s, globex.ID, carol.ID, 1)
	for name, f := range map[string]store.TokenFilter{
		"unknown id":         {OrgID: acme.ID, AfterID: uuid.NewString()},
		"another org's":      {OrgID: acme.ID, AfterID: carols[0].ID},
		"another user's":     {OrgID: acme.ID, UserID: alice.ID, AfterID: bobs[0].ID},
		"another org's user": {OrgID: globex.ID, AfterID: bobs[0].ID},
	} {
		_, err := s.ListTokens(ctx, f)
		checkErr(t, "ListTokens(after "+name+")", err, store.ErrNotFound)
	}
}

func testRevokeToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	tok := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	first := base.Add(time.Hour + 7*time.Microsecond)
	got := must(s.RevokeToken(ctx, tok.ID, first))(t)
	want := tok
	want.RevokedAt = first
	checkToken(t, "first RevokeToken", got, want)
	// Revoking again keeps the first time: it is when access actually ended.
	got = must(s.RevokeToken(ctx, tok.ID, first.Add(time.Hour)))(t)
	checkToken(t, "second RevokeToken", got, want)
	checkToken(t, "GetToken after revoke", must(s.GetToken(ctx, tok.ID))(t), want)

	_, err := s.RevokeToken(ctx, uuid.NewString(), first)
	checkErr(t, "RevokeToken(unknown)", err, store.ErrNotFound)
}

func testTouchTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	never := newToken(org.ID, u.ID, base)
	used := newToken(org.ID, u.ID, base)
	used.LastUsedAt = base.Add(5 * time.Hour)
	idle := newToken(org.ID, u.ID, base)
	for _, tok := range []store.Token{never, used, idle} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
	}
	check := func(step string, tok store.Token, want time.Time) {
		t.Helper()
		got := must(s.GetToken(ctx, tok.ID))(t)
		checkTime(t, step+": LastUsedAt", got.LastUsedAt, want)
	}

	if err := s.TouchTokens(ctx, map[string]time.Time{
		never.ID:         base.Add(3*time.Hour + 11*time.Microsecond),
		used.ID:          base.Add(4 * time.Hour), // older than stored: ignored
		uuid.NewString(): base.Add(9 * time.Hour), // unknown: skipped
	}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}
	check("first batch", never, base.Add(3*time.Hour+11*time.Microsecond))
	check("first batch", used, base.Add(5*time.Hour))
	check("first batch", idle, time.Time{})

	if err := s.TouchTokens(ctx, map[string]time.Time{
		never.ID: base.Add(2 * time.Hour), // a late, stale report
		used.ID:  base.Add(6 * time.Hour),
	}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}
	check("second batch", never, base.Add(3*time.Hour+11*time.Microsecond))
	check("second batch", used, base.Add(6*time.Hour))

	for name, m := range map[string]map[string]time.Time{"empty": {}, "nil": nil} {
		if err := s.TouchTokens(ctx, m); err != nil {
			t.Errorf("TouchTokens(%s): %v", name, err)
		}
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// must returns v, failing the test on err: must(f(x))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func newOrgUser(t *testing.T, s store.Store, org, email string) (store.Org, store.User) {
	t.Helper()
	o := must(s.EnsureOrg(t.Context(), org))(t)
	return o, newUser(t, s, o.ID, email)
}

func newUser(t *testing.T, s store.Store, orgID, email string) store.User {
	t.Helper()
	u := store.User{
		ID:           uuid.NewString(),
		OrgID:        orgID,
		Email:        email,
		PasswordHash: "hash-of-" + email,
		CreatedAt:    base,
	}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func newToken(orgID, userID string, created time.Time) store.Token {
	return store.Token{
		ID:        uuid.NewString(),
		OrgID:     orgID,
		UserID:    userID,
		Name:      "ci",
		Hint:      "km_abcd",
		Digest:    randomBytes(32),
		PepperID:  "p1",
		Scopes:    []string{"read"},
		CreatedBy: userID,
		CreatedAt: created,
	}
}

// createTokens creates n tokens a second apart, counting back from base.
func createTokens(t *testing.T, s store.Store, orgID, userID string, n int) []store.Token {
	t.Helper()
	var out []store.Token
	for i := range n {
		tok := newToken(orgID, userID, base.Add(-time.Duration(i)*time.Second))
		if err := s.CreateToken(t.Context(), tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		out = append(out, tok)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return b
}

// sorted returns tokens in ListTokens order: newest first, ties by id descending.
func sorted(tokens []store.Token) []store.Token {
	out := slices.Clone(tokens)
	slices.SortFunc(out, func(a, b store.Token) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	return out
}

func checkIDs(t *testing.T, what string, got, want []store.Token) {
	t.Helper()
	ids := func(tokens []store.Token) []string {
		out := make([]string, len(tokens))
		for i, tok := range tokens {
			out[i] = tok.ID
		}
		return out
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Errorf("%s returned ids\n  %q\nwant\n  %q", what, g, w)
	}
}

func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func checkUser(t *testing.T, what string, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.Email != want.Email ||
		got.PasswordHash != want.PasswordHash || got.Admin != want.Admin {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	checkTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
}

func checkToken(t *testing.T, what string, got, want store.Token) {
	t.Helper()
	for _, f := range []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"OrgID", got.OrgID, want.OrgID},
		{"UserID", got.UserID, want.UserID},
		{"Name", got.Name, want.Name},
		{"Description", got.Description, want.Description},
		{"Hint", got.Hint, want.Hint},
		{"PepperID", got.PepperID, want.PepperID},
		{"CreatedBy", got.CreatedBy, want.CreatedBy},
	} {
		if f.got != f.want {
			t.Errorf("%s: %s = %q, want %q", what, f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(got.Digest, want.Digest) {
		t.Errorf("%s: Digest = %x, want %x", what, got.Digest, want.Digest)
	}
	if len(got.Scopes) != len(want.Scopes) || (len(want.Scopes) > 0 && !slices.Equal(got.Scopes, want.Scopes)) {
		t.Errorf("%s: Scopes = %q, want %q", what, got.Scopes, want.Scopes)
	}
	checkTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, what+": ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, what+": LastUsedAt", got.LastUsedAt, want.LastUsedAt)
	checkTime(t, what+": RevokedAt", got.RevokedAt, want.RevokedAt)
}

// checkTime accepts got if it is within a microsecond of want (truncated,
// rounded or exact) and in UTC; a zero want needs a zero got.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero", what, got)
		}
		return
	}
	if d := got.Sub(want).Abs(); d >= time.Microsecond {
		t.Errorf("%s = %v, want %v to the microsecond", what, got, want.UTC())
	}
	checkUTC(t, what, got)
}

func checkUTC(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, got.Location())
	}
}

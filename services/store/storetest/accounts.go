package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

func userIDs(users []store.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func newServiceAccount(t *testing.T, s store.Store, orgID, name, by string) store.User {
	t.Helper()
	id := uuid.NewString()
	u := store.User{ID: id, OrgID: orgID, Email: store.ServiceAccountEmail(id), Kind: store.KindServiceAccount,
		Name: name, Description: "deploys " + name, CreatedBy: by, Scopes: []string{"deploy"}, CreatedAt: base}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(service account %s): %v", name, err)
	}
	return u
}

// People list by email, service accounts apart by name; an email prefix
// is literal (no LIKE wildcards); pages continue after an id.
func testListUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, carol := newOrgUser(t, s, "acme", "carol@example.com")
	alice := newUser(t, s, org.ID, "alice@example.com")
	pct := newUser(t, s, org.ID, "a%b@example.com")
	bob := newUser(t, s, org.ID, "bob@example.org")
	other, _ := newOrgUser(t, s, "globex", "alice2@example.com")
	sa := newServiceAccount(t, s, org.ID, "ci", alice.ID)
	sb := newServiceAccount(t, s, org.ID, "backup", alice.ID)

	got := must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID}))(t)
	if w := []string{pct.ID, alice.ID, bob.ID, carol.ID}; !slices.Equal(userIDs(got), w) {
		t.Errorf("ListUsers = %q, want %q (by email, people only)", userIDs(got), w)
	}
	if got[1].Kind != store.KindUser || got[1].Email != alice.Email {
		t.Errorf("listed user = %+v", got[1])
	}
	got = must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, EmailPrefix: "a"}))(t)
	if w := []string{pct.ID, alice.ID}; !slices.Equal(userIDs(got), w) {
		t.Errorf("prefix a = %q, want %q", userIDs(got), w)
	}
	got = must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, EmailPrefix: "a%"}))(t)
	if w := []string{pct.ID}; !slices.Equal(userIDs(got), w) {
		t.Errorf("prefix a%% = %q, want %q (literal)", userIDs(got), w)
	}
	got = must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, EmailPrefix: "_lice"}))(t)
	if len(got) != 0 {
		t.Errorf("prefix _lice = %q, want none (literal)", userIDs(got))
	}
	got = must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, Kind: store.KindServiceAccount}))(t)
	if w := []string{sb.ID, sa.ID}; !slices.Equal(userIDs(got), w) {
		t.Errorf("service accounts = %q, want %q (by name)", userIDs(got), w)
	}
	if g := got[1]; g.Kind != store.KindServiceAccount || g.Name != "ci" || g.Description != sa.Description ||
		g.CreatedBy != alice.ID || !slices.Equal(g.Scopes, sa.Scopes) {
		t.Errorf("service account = %+v, want %+v", g, sa)
	}

	var pages []string
	after := ""
	for range 10 {
		page := must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, Limit: 3, AfterID: after}))(t)
		pages = append(pages, userIDs(page)...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	if w := []string{pct.ID, alice.ID, bob.ID, carol.ID}; !slices.Equal(pages, w) {
		t.Errorf("pages = %q, want %q", pages, w)
	}
	_, err := s.ListUsers(ctx, store.UserFilter{OrgID: other.ID, AfterID: alice.ID})
	checkErr(t, "ListUsers(after another org's user)", err, store.ErrNotFound)
	_, err = s.ListUsers(ctx, store.UserFilter{OrgID: org.ID, AfterID: sa.ID})
	checkErr(t, "ListUsers(people after a service account)", err, store.ErrNotFound)
}

// A service account's name is unique among its organization's live
// service accounts; its tokens carry its kind.
func testServiceAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, admin := newOrgUser(t, s, "acme", "admin@example.com")
	other := must(s.EnsureOrg(ctx, "globex"))(t)
	sa := newServiceAccount(t, s, org.ID, "ci", admin.ID)
	got := must(s.GetUser(ctx, sa.ID))(t)
	if got.Kind != store.KindServiceAccount || got.Name != "ci" || got.Email != store.ServiceAccountEmail(sa.ID) {
		t.Errorf("GetUser(service account) = %+v", got)
	}
	if u := must(s.GetUser(ctx, admin.ID))(t); u.Kind != store.KindUser {
		t.Errorf("person's kind = %q, want %q", u.Kind, store.KindUser)
	}
	dup := store.User{ID: uuid.NewString(), OrgID: org.ID, Kind: store.KindServiceAccount, Name: "ci"}
	dup.Email = store.ServiceAccountEmail(dup.ID)
	checkErr(t, "CreateUser(duplicate service account name)", s.CreateUser(ctx, dup), store.ErrAlreadyExists)
	newServiceAccount(t, s, other.ID, "ci", admin.ID) // another org may use the name

	tok := newToken(org.ID, sa.ID, base)
	tok.OwnerKind = store.KindServiceAccount
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if g := must(s.GetTokenByDigest(ctx, [][]byte{tok.Digest}))(t); g.OwnerKind != store.KindServiceAccount {
		t.Errorf("service account token's owner kind = %q", g.OwnerKind)
	}
	people := newToken(org.ID, admin.ID, base)
	if err := s.CreateToken(ctx, people); err != nil {
		t.Fatal(err)
	}
	if g := must(s.GetToken(ctx, people.ID))(t); g.OwnerKind != store.KindUser || g.RevokeReason != "" {
		t.Errorf("person's token: owner kind %q, revoke reason %q", g.OwnerKind, g.RevokeReason)
	}
	people2 := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, OwnerKind: store.KindUser}))(t)
	checkIDs(t, "ListTokens(people's)", people2, []store.Token{people})
	machines := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, OwnerKind: store.KindServiceAccount}))(t)
	checkIDs(t, "ListTokens(service accounts')", machines, []store.Token{tok})
	// A rotation's successor keeps the owner's kind.
	next := newToken(org.ID, sa.ID, base.Add(time.Second))
	if _, err := s.RotateToken(ctx, tok.ID, next, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g := must(s.GetToken(ctx, next.ID))(t); g.OwnerKind != store.KindServiceAccount {
		t.Errorf("successor's owner kind = %q", g.OwnerKind)
	}

	rm := must(s.DeleteUser(ctx, sa.ID, base.Add(time.Minute)))(t)
	if len(rm.Revoked) != 2 {
		t.Errorf("deleting the service account revoked %d tokens, want 2", len(rm.Revoked))
	}
	// The name is free again once the account is deleted.
	newServiceAccount(t, s, org.ID, "ci", admin.ID)
}

// Disabling revokes every unrevoked token (reason, log rows in the same
// transaction), ends every session, refuses new tokens; a second disable
// changes nothing; enabling lets tokens be minted again but brings none back.
func testDisableUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	bob := newUser(t, s, org.ID, "bob@example.com")
	toks := createTokens(t, s, org.ID, alice.ID, 3)
	done := must(s.RevokeToken(ctx, toks[2].ID, base))(t)
	bobs := createTokens(t, s, org.ID, bob.ID, 1)
	for range 2 {
		if err := s.CreateSession(ctx, newSession(alice.ID, base)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, newSession(bob.ID, base)); err != nil {
		t.Fatal(err)
	}
	_, head := must2(s.RevocationLogBounds(ctx))(t)

	at := base.Add(time.Hour)
	rm := must(s.DisableUser(ctx, alice.ID, at))(t)
	if !rm.Changed || rm.EndedSessions != 2 || rm.User.DisabledAt.IsZero() || !rm.User.DisabledAt.Equal(at) {
		t.Errorf("DisableUser = changed %v, ended %d, disabled at %v", rm.Changed, rm.EndedSessions, rm.User.DisabledAt)
	}
	checkIDs(t, "DisableUser revoked", sortedByID(rm.Revoked), sortedByID(toks[:2]))
	for _, r := range rm.Revoked {
		if r.RevokeReason != store.RevokeReasonOwnerDisabled || !r.RevokedAt.Equal(at) || r.RevocationSeq <= head {
			t.Errorf("revoked token %s: reason %q at %v seq %d", r.ID, r.RevokeReason, r.RevokedAt, r.RevocationSeq)
		}
	}
	if g := must(s.GetToken(ctx, toks[0].ID))(t); g.RevokeReason != store.RevokeReasonOwnerDisabled || g.RevokedAt.IsZero() {
		t.Errorf("stored token after disable: reason %q revoked %v", g.RevokeReason, g.RevokedAt)
	}
	if g := must(s.GetToken(ctx, toks[2].ID))(t); !g.RevokedAt.Equal(done.RevokedAt) || g.RevokeReason != "" {
		t.Errorf("token revoked before: revoked %v reason %q (must not change)", g.RevokedAt, g.RevokeReason)
	}
	if g := must(s.GetToken(ctx, bobs[0].ID))(t); !g.RevokedAt.IsZero() {
		t.Error("another user's token was revoked")
	}
	rows := must(s.ListRevocations(ctx, head, 100))(t)
	if len(rows) != 2 {
		t.Fatalf("log rows after disable = %d, want 2", len(rows))
	}
	for i, r := range rows {
		if r.Reason != store.RevocationOwnerDisabled || r.TokenID != sortedByID(rm.Revoked)[i].ID || r.Seq != sortedByID(rm.Revoked)[i].RevocationSeq {
			t.Errorf("log row %d = %+v", i, r)
		}
	}
	if n := must(s.DeleteUserSessions(ctx, bob.ID, ""))(t); n != 1 {
		t.Errorf("bob's sessions = %d, want 1 (untouched)", n)
	}
	checkErr(t, "CreateToken(disabled owner)", s.CreateToken(ctx, newToken(org.ID, alice.ID, at)), store.ErrConflict)

	again := must(s.DisableUser(ctx, alice.ID, at.Add(time.Hour)))(t)
	if again.Changed || len(again.Revoked) != 0 || !again.User.DisabledAt.Equal(at) {
		t.Errorf("second DisableUser = %+v, want no change", again)
	}
	if _, h := must2(s.RevocationLogBounds(ctx))(t); h != rows[1].Seq {
		t.Errorf("second disable wrote log rows: head %d, want %d", h, rows[1].Seq)
	}

	u := must(s.EnableUser(ctx, alice.ID))(t)
	if !u.DisabledAt.IsZero() {
		t.Errorf("enabled user disabled at %v", u.DisabledAt)
	}
	if g := must(s.GetToken(ctx, toks[0].ID))(t); g.RevokedAt.IsZero() {
		t.Error("enable brought a token back")
	}
	if err := s.CreateToken(ctx, newToken(org.ID, alice.ID, at)); err != nil {
		t.Errorf("CreateToken after enable: %v", err)
	}
	_, err := s.DisableUser(ctx, uuid.NewString(), at)
	checkErr(t, "DisableUser(unknown)", err, store.ErrNotFound)
	_, err = s.EnableUser(ctx, uuid.NewString())
	checkErr(t, "EnableUser(unknown)", err, store.ErrNotFound)
}

func sortedByID(tokens []store.Token) []store.Token {
	out := slices.Clone(tokens)
	slices.SortFunc(out, func(a, b store.Token) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	return out
}

// Tokens minted while the owner is being disabled: every one that was
// created is revoked afterwards, none slips through (each CreateToken is
// either before the disable, and revoked by it, or after it, and refused).
func testDisableUserConcurrentMint(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	const minters, each = 4, 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		start   = make(chan struct{})
	)
	for range minters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range each {
				tok := newToken(org.ID, alice.ID, base)
				switch err := s.CreateToken(ctx, tok); {
				case err == nil:
					mu.Lock()
					created = append(created, tok.ID)
					mu.Unlock()
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("CreateToken: %v", err)
				}
			}
		}()
	}
	close(start)
	rm, err := s.DisableUser(ctx, alice.ID, time.Time{})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	for _, r := range rm.Revoked {
		revoked[r.ID] = true
	}
	for _, id := range created {
		if !revoked[id] {
			t.Errorf("token %s was created but not revoked by the disable", id)
		}
	}
	active := must(s.ListTokens(ctx, store.TokenFilter{OrgID: org.ID, UserID: alice.ID, Active: true}))(t)
	if len(active) != 0 {
		t.Errorf("%d active tokens after disable", len(active))
	}
	if len(rm.Revoked) != len(created) {
		t.Errorf("disable revoked %d tokens, %d were created", len(rm.Revoked), len(created))
	}
}

// Deleting revokes everything, ends every session, frees the email and
// keeps the row (by id) for the audit trail; it is not listed.
func testDeleteUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	toks := createTokens(t, s, org.ID, alice.ID, 2)
	if err := s.CreateSession(ctx, newSession(alice.ID, base)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPasswordReset(ctx, alice.ID, randomBytes(32), base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Minute)
	rm := must(s.DeleteUser(ctx, alice.ID, at))(t)
	if !rm.Changed || rm.EndedSessions != 1 || !rm.User.DeletedAt.Equal(at) {
		t.Errorf("DeleteUser = %+v", rm)
	}
	checkIDs(t, "DeleteUser revoked", sortedByID(rm.Revoked), sortedByID(toks))
	for _, r := range rm.Revoked {
		if r.RevokeReason != store.RevokeReasonOwnerDeleted || r.RevocationSeq == 0 {
			t.Errorf("revoked %s: reason %q seq %d", r.ID, r.RevokeReason, r.RevocationSeq)
		}
	}
	u := must(s.GetUser(ctx, alice.ID))(t)
	if u.Email != store.DeletedEmail(alice.ID) || u.PasswordHash != "" || !u.DeletedAt.Equal(at) {
		t.Errorf("deleted user = %+v", u)
	}
	_, err := s.GetUserByEmail(ctx, alice.Email)
	checkErr(t, "GetUserByEmail(deleted)", err, store.ErrNotFound)
	if got := must(s.ListUsers(ctx, store.UserFilter{OrgID: org.ID}))(t); len(got) != 0 {
		t.Errorf("ListUsers lists deleted users: %q", userIDs(got))
	}
	newUser(t, s, org.ID, alice.Email) // the address is free
	_, err = s.DeleteUser(ctx, alice.ID, at)
	checkErr(t, "DeleteUser(deleted)", err, store.ErrNotFound)
	_, err = s.DisableUser(ctx, alice.ID, at)
	checkErr(t, "DisableUser(deleted)", err, store.ErrNotFound)
	checkErr(t, "SetUserAdmin(deleted)", s.SetUserAdmin(ctx, alice.ID, true), store.ErrNotFound)
	checkErr(t, "SetPasswordReset(deleted)", s.SetPasswordReset(ctx, alice.ID, randomBytes(32), at.Add(time.Hour)), store.ErrNotFound)
	checkErr(t, "CreateToken(deleted owner)", s.CreateToken(ctx, newToken(org.ID, alice.ID, at)), store.ErrConflict)
}

func testSetUserAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, alice := newOrgUser(t, s, "acme", "alice@example.com")
	if err := s.SetUserAdmin(ctx, alice.ID, true); err != nil {
		t.Fatal(err)
	}
	if u := must(s.GetUser(ctx, alice.ID))(t); !u.Admin {
		t.Error("not promoted")
	}
	if err := s.SetUserAdmin(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	if u := must(s.GetUser(ctx, alice.ID))(t); u.Admin {
		t.Error("not demoted")
	}
	checkErr(t, "SetUserAdmin(unknown)", s.SetUserAdmin(ctx, uuid.NewString(), true), store.ErrNotFound)
}

// A reset code works once, only before it expires, only as the latest one
// issued, and never for a disabled user; redeeming it ends every session.
func testPasswordReset(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, alice := newOrgUser(t, s, "acme", "alice@example.com")
	code, old := randomBytes(32), randomBytes(32)
	exp := base.Add(time.Hour)
	if err := s.SetPasswordReset(ctx, alice.ID, old, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPasswordReset(ctx, alice.ID, code, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, newSession(alice.ID, base)); err != nil {
		t.Fatal(err)
	}
	_, err := s.RedeemPasswordReset(ctx, alice.ID, old, base, "new-hash")
	checkErr(t, "RedeemPasswordReset(replaced code)", err, store.ErrNotFound)
	_, err = s.RedeemPasswordReset(ctx, alice.ID, code, exp, "new-hash")
	checkErr(t, "RedeemPasswordReset(at expiry)", err, store.ErrNotFound)
	if u := must(s.GetUser(ctx, alice.ID))(t); u.PasswordHash != alice.PasswordHash {
		t.Error("a refused redeem changed the password")
	}
	n, err := s.RedeemPasswordReset(ctx, alice.ID, code, exp.Add(-time.Second), "new-hash")
	if err != nil || n != 1 {
		t.Fatalf("RedeemPasswordReset = %d, %v; want 1 ended session", n, err)
	}
	if u := must(s.GetUser(ctx, alice.ID))(t); u.PasswordHash != "new-hash" {
		t.Errorf("password hash = %q", u.PasswordHash)
	}
	_, err = s.RedeemPasswordReset(ctx, alice.ID, code, base, "again")
	checkErr(t, "RedeemPasswordReset(used)", err, store.ErrNotFound)

	if err := s.SetPasswordReset(ctx, alice.ID, code, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DisableUser(ctx, alice.ID, base); err != nil {
		t.Fatal(err)
	}
	_, err = s.RedeemPasswordReset(ctx, alice.ID, code, base, "again")
	checkErr(t, "RedeemPasswordReset(disabled)", err, store.ErrNotFound)
	sa := newServiceAccount(t, s, org.ID, "ci", alice.ID)
	checkErr(t, "SetPasswordReset(service account)", s.SetPasswordReset(ctx, sa.ID, code, exp), store.ErrNotFound)
	checkErr(t, "SetPasswordReset(unknown)", s.SetPasswordReset(ctx, uuid.NewString(), code, exp), store.ErrNotFound)
}

func testOrgs(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := must(s.EnsureOrg(ctx, "beta"))(t)
	a := must(s.EnsureOrg(ctx, "alpha"))(t)
	got := must(s.ListOrgs(ctx))(t)
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Errorf("ListOrgs = %+v, want alpha, beta", got)
	}
	r := must(s.RenameOrg(ctx, b.ID, "gamma"))(t)
	if r.ID != b.ID || r.Name != "gamma" {
		t.Errorf("RenameOrg = %+v", r)
	}
	if g := must(s.GetOrg(ctx, b.ID))(t); g.Name != "gamma" {
		t.Errorf("renamed org's name = %q", g.Name)
	}
	_, err := s.RenameOrg(ctx, b.ID, "alpha")
	checkErr(t, "RenameOrg(taken)", err, store.ErrAlreadyExists)
	_, err = s.RenameOrg(ctx, uuid.NewString(), "delta")
	checkErr(t, "RenameOrg(unknown)", err, store.ErrNotFound)
}

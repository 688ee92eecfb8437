package storetest

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/store"
)

// testListTokensSearch checks the console's filters: text search, scope,
// status, expiring before, predecessor, and that each works with the others
// and with the tenant boundary.
func testListTokensSearch(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	other, carol := newOrgUser(t, s, "globex", "carol@example.com")
	now := base.Add(24 * time.Hour)
	mk := func(orgID, userID, name string, created time.Time, edit func(*store.Token)) store.Token {
		tok := newToken(orgID, userID, created)
		tok.Name = name
		edit(&tok)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", name, err)
		}
		return tok
	}
	deploy := mk(org.ID, u.ID, "Deploy bot", base, func(t *store.Token) { t.Scopes = []string{"deploy", "read"} })
	hinted := mk(org.ID, u.ID, "ci", base.Add(time.Second), func(t *store.Token) { t.Hint = "km_XyZ123" })
	described := mk(org.ID, u.ID, "ci", base.Add(2*time.Second), func(t *store.Token) {
		t.Description = "used by the DEPLOY pipeline"
		t.ExpiresAt = now.Add(time.Hour)
	})
	expired := mk(org.ID, u.ID, "old", base.Add(3*time.Second), func(t *store.Token) { t.ExpiresAt = now.Add(-time.Hour) })
	revoked := mk(org.ID, u.ID, "gone", base.Add(4*time.Second), func(t *store.Token) {
		t.RevokedAt = base.Add(time.Hour)
		t.RotatedToID = deploy.ID
		t.Scopes = []string{"deploy"}
	})
	// Another org's token matches every filter and must never show.
	mk(other.ID, carol.ID, "deploy", base, func(t *store.Token) {
		t.Scopes = []string{"deploy"}
		t.RotatedToID = deploy.ID
		t.ExpiresAt = now.Add(time.Hour)
	})

	for _, tc := range []struct {
		name string
		f    store.TokenFilter
		want []store.Token
	}{
		{"query name", store.TokenFilter{Query: "deploy"}, []store.Token{deploy, described}},
		{"query hint", store.TokenFilter{Query: "xyz1"}, []store.Token{hinted}},
		{"query no match", store.TokenFilter{Query: "nothing%_"}, nil},
		{"query percent is literal", store.TokenFilter{Query: "%"}, nil},
		{"scope", store.TokenFilter{Scope: "deploy"}, []store.Token{deploy, revoked}},
		{"scope and active", store.TokenFilter{Scope: "deploy", Status: store.TokenStatusActive}, []store.Token{deploy}},
		{"active", store.TokenFilter{Status: store.TokenStatusActive}, []store.Token{deploy, hinted, described}},
		{"revoked", store.TokenFilter{Status: store.TokenStatusRevoked}, []store.Token{revoked}},
		{"expired", store.TokenFilter{Status: store.TokenStatusExpired}, []store.Token{expired}},
		{"inactive", store.TokenFilter{Status: store.TokenStatusInactive}, []store.Token{expired, revoked}},
		{"status wins over Active", store.TokenFilter{Status: store.TokenStatusRevoked, Active: true}, []store.Token{revoked}},
		{"expires before", store.TokenFilter{ExpiresBefore: now.Add(2 * time.Hour), Status: store.TokenStatusActive}, []store.Token{described}},
		{"predecessor", store.TokenFilter{RotatedToID: deploy.ID}, []store.Token{revoked}},
		{"user and query", store.TokenFilter{UserID: carol.ID, Query: "deploy"}, nil},
	} {
		f := tc.f
		f.OrgID, f.Now = org.ID, now
		got := must(s.ListTokens(ctx, f))(t)
		checkIDs(t, "ListTokens("+tc.name+")", got, sorted(tc.want))
	}
}

// testListTokensOrder pages through every sort order in small pages: ties
// (equal keys, missing keys) must be split by id, and no token may be lost
// or repeated.
func testListTokensOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	var all []store.Token
	for i := range 9 {
		tok := newToken(org.ID, u.ID, base.Add(time.Duration(i%3)*time.Second))
		if i%2 == 0 {
			tok.ExpiresAt = base.Add(time.Duration(i%4) * time.Hour)
		}
		if i%3 != 0 {
			tok.LastUsedAt = base.Add(time.Duration(i%2) * time.Minute)
		}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		all = append(all, tok)
	}
	never := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	key := map[store.TokenOrder]func(store.Token) time.Time{
		store.OrderCreatedDesc:  func(t store.Token) time.Time { return t.CreatedAt },
		store.OrderCreatedAsc:   func(t store.Token) time.Time { return t.CreatedAt },
		store.OrderLastUsedDesc: func(t store.Token) time.Time { return t.LastUsedAt },
		store.OrderLastUsedAsc:  func(t store.Token) time.Time { return t.LastUsedAt },
		store.OrderExpiresAsc: func(t store.Token) time.Time {
			return cmp.Or(t.ExpiresAt, never)
		},
		store.OrderExpiresDesc: func(t store.Token) time.Time { return cmp.Or(t.ExpiresAt, never) },
	}
	desc := map[store.TokenOrder]bool{store.OrderCreatedDesc: true, store.OrderLastUsedDesc: true, store.OrderExpiresDesc: true}
	for order, k := range key {
		want := slices.Clone(all)
		slices.SortFunc(want, func(a, b store.Token) int {
			c := cmp.Or(k(a).Compare(k(b)), strings.Compare(a.ID, b.ID))
			if desc[order] {
				return -c
			}
			return c
		})
		for _, limit := range []int{0, 1, 2, 4} {
			f := store.TokenFilter{OrgID: org.ID, Order: order, Limit: limit}
			var got []store.Token
			for page := 0; ; page++ {
				if page > len(want)+1 {
					t.Fatalf("ListTokens(order %d, limit %d) does not end", order, limit)
				}
				p := must(s.ListTokens(ctx, f))(t)
				got = append(got, p...)
				if limit == 0 || len(p) < limit {
					break
				}
				f.AfterID = p[len(p)-1].ID
			}
			checkIDs(t, "ListTokens(order "+string(rune('0'+order))+")", got, want)
		}
	}
}

// testAuditFilters checks the audit log's filters, alone and together.
func testAuditFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	org := uuid.NewString()
	mk := func(action, actorEmail, target string, at time.Time) store.AuditEvent {
		e := newAuditEvent(org, at)
		e.Action, e.ActorEmail, e.TargetID = action, actorEmail, target
		return e
	}
	tok := uuid.NewString()
	a := mk(audit.TokenMint, "alice@example.com", tok, base)
	b := mk(audit.TokenRevoke, "alice@example.com", tok, base.Add(time.Minute))
	c := mk(audit.TokenMint, "bob@example.com", uuid.NewString(), base.Add(2*time.Minute))
	d := mk(audit.SignInSuccess, "bob@example.com", uuid.NewString(), base.Add(3*time.Minute))
	appendAuditEvents(t, s, a, b, c, d)
	// Another org's event matches every filter.
	noise := a
	noise.ID, noise.OrgID = uuid.NewString(), uuid.NewString()
	appendAuditEvents(t, s, noise)

	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []store.AuditEvent
	}{
		{"action", store.AuditFilter{Action: audit.TokenMint}, []store.AuditEvent{a, c}},
		{"actor email", store.AuditFilter{Actor: "bob@example.com"}, []store.AuditEvent{c, d}},
		{"actor id", store.AuditFilter{Actor: a.ActorUserID}, []store.AuditEvent{a}},
		{"targets", store.AuditFilter{TargetIDs: []string{tok, d.TargetID}}, []store.AuditEvent{a, b, d}},
		{"since", store.AuditFilter{Since: base.Add(time.Minute)}, []store.AuditEvent{b, c, d}},
		{"until", store.AuditFilter{Until: base.Add(time.Minute)}, []store.AuditEvent{a}},
		{"all together", store.AuditFilter{Action: audit.TokenMint, Actor: "alice@example.com", Since: base, Until: base.Add(time.Hour)}, []store.AuditEvent{a}},
	} {
		f := tc.f
		f.OrgID = org
		got := must(s.ListAuditEvents(ctx, f))(t)
		if eventIDs(got) != eventIDs(sortedEvents(tc.want)) {
			t.Errorf("ListAuditEvents(%s) = %s, want %s", tc.name, eventIDs(got), eventIDs(sortedEvents(tc.want)))
		}
	}
}

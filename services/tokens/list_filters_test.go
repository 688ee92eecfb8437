package tokens_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/tokens"
)

// List pages exactly, bounds its text filters at 200 characters, filters
// by expiry only when asked, and CreatorEmails names each creator once.
// Mutations (list.go on f36f8cb): `len(req.Query|Scope) > maxQueryLen` →
// `>=` (:91, :94); `req.ExpiresWithin > 0` (:106) and `f.Status == store.TokenStatusAny` (:108) negated; `f.Limit++` →
// `--` (:128); CreatorEmails' `t.CreatedBy == ""` (:150) and `err != nil`
// (:154) negated.
func TestListPagesAndFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	svc := f.replica(t, "", "").svc
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	var ids []string
	for _, req := range []tokens.MintRequest{
		{Name: "a", Scopes: []string{"read"}},
		{Name: "b", Scopes: []string{"read"}},
		{Name: "soon", Scopes: []string{"read"}, TTL: time.Hour},
	} {
		m, err := svc.Mint(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Token.ID)
	}

	first, next, err := svc.List(ctx, tokens.ListRequest{PageSize: 2})
	if err != nil || len(first) != 2 || next == "" {
		t.Fatalf("page 1 of 2: %d tokens, next %q, %v; want 2 and a next page", len(first), next, err)
	}
	rest, last, err := svc.List(ctx, tokens.ListRequest{PageSize: 2, PageToken: next})
	if err != nil || len(rest) != 1 || last != "" {
		t.Fatalf("page 2 of 2: %d tokens, next %q, %v; want 1 and no next page", len(rest), last, err)
	}
	seen := map[string]bool{}
	for _, tok := range append(first, rest...) {
		seen[tok.ID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("token %s on neither page", id)
		}
	}

	all, _, err := svc.List(ctx, tokens.ListRequest{})
	if err != nil || len(all) != 3 {
		t.Fatalf("no expiry filter: %d tokens, %v; want all 3", len(all), err)
	}
	soon, _, err := svc.List(ctx, tokens.ListRequest{ExpiresWithin: 2 * time.Hour})
	if err != nil || len(soon) != 1 || soon[0].ID != ids[2] {
		t.Fatalf("expiring within 2 h: %d tokens, %v; want the one minted for an hour", len(soon), err)
	}

	// Expiring soon means active ones, even with inactive ones shown
	// (list.go:108's `f.Status == store.TokenStatusAny` negated listed a
	// revoked one too).
	gone, err := svc.Mint(ctx, tokens.MintRequest{Name: "revoked soon", Scopes: []string{"read"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Revoke(ctx, gone.Token.ID); err != nil {
		t.Fatal(err)
	}
	soon, _, err = svc.List(ctx, tokens.ListRequest{ExpiresWithin: 2 * time.Hour, ShowInactive: true})
	if err != nil || len(soon) != 1 || soon[0].ID != ids[2] {
		t.Fatalf("expiring within 2 h, inactive shown: %d tokens, %v; want only the active one", len(soon), err)
	}

	long := strings.Repeat("q", 200)
	for _, req := range []tokens.ListRequest{{Query: long}, {Scope: long}} {
		if _, _, err := svc.List(ctx, req); err != nil {
			t.Errorf("a 200-character filter refused: %v", err)
		}
	}
	for _, req := range []tokens.ListRequest{{Query: long + "q"}, {Scope: long + "q"}} {
		if _, _, err := svc.List(ctx, req); fault.CodeOf(err) != fault.InvalidArgument {
			t.Errorf("a 201-character filter: %v, want InvalidArgument", err)
		}
	}

	emails := svc.CreatorEmails(ctx, append(all, gone.Token))
	if len(emails) != 1 || emails[f.owner.UserID] != "a@example.com" {
		t.Errorf("creator emails %v, want the owner's once", emails)
	}
}

package tokens_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tokens"
)

// mintClock is the fixed time of the Mint tests: expiries are compared
// with it exactly.
var mintClock = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func mintService(t *testing.T) (*fixture, *tokens.Service) {
	t.Helper()
	f := newFixture(t)
	return f, tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Logger: quiet,
		Now: func() time.Time { return mintClock }})
}

func int64p(n int64) *int64 { return &n }

// Every bound CreateToken documents, at its edge: the last value taken
// and the first refused, as InvalidArgument.
//
// Mutations, each seen to fail it: mint.go `name == ""` negated;
// `> maxNameLen` → `>=`; `> maxDescriptionLen` → `>=`; the "expireTime or
// ttl, not both" case negated; `!req.ExpiresAt.After(now)` negated;
// `req.TTL < 0` → `<= 0`; options.go `> maxExternalIDLen` → `>=`;
// `!utf8.ValidString(l.ExternalID)` dropped; `proto.Size(...) >
// MaxMetadataBytes` → `>=` and negated; `n < 1` → `<= 1`; `n > maxUses` →
// `>=`; `l.RateLimit < 1` → `<= 1`; `> maxRateLimit` → `>=`;
// `l.RatePeriod < minRatePeriod` → `<=`; `> maxRatePeriod` → `>=`;
// `l.RatePeriod%time.Microsecond != 0` negated; NormalizeCIDRs' `len(in) >
// maxCIDRs` → `>=`.
func TestMintBoundsAtTheirEdges(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	// metadata of exactly n bytes serialized: one string field.
	metadata := func(n int) *structpb.Struct {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("")}}
		for m := 0; ; m++ {
			s.Fields["k"] = structpb.NewStringValue(strings.Repeat("x", m))
			if size := proto.Size(s); size == n {
				return s
			} else if size > n {
				t.Fatalf("no metadata of exactly %d bytes", n)
			}
		}
	}
	cidrs := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		}
		return out
	}
	cases := []struct {
		name string
		req  tokens.MintRequest
		ok   bool
	}{
		{"64 allowed CIDRs", tokens.MintRequest{Name: "t", Options: tokens.Options{AllowedCIDRs: cidrs(64)}}, true},
		{"65 allowed CIDRs", tokens.MintRequest{Name: "t", Options: tokens.Options{AllowedCIDRs: cidrs(65)}}, false},
		{"name empty", tokens.MintRequest{Name: ""}, false},
		{"name blank", tokens.MintRequest{Name: " \t "}, false},
		{"name 200 runes", tokens.MintRequest{Name: strings.Repeat("é", 200)}, true},
		{"name 201 runes", tokens.MintRequest{Name: strings.Repeat("é", 201)}, false},
		{"name invalid UTF-8", tokens.MintRequest{Name: "a\xff"}, false},
		{"description 2000 runes", tokens.MintRequest{Name: "t", Description: strings.Repeat("é", 2000)}, true},
		{"description 2001 runes", tokens.MintRequest{Name: "t", Description: strings.Repeat("é", 2001)}, false},
		{"description invalid UTF-8", tokens.MintRequest{Name: "t", Description: "a\xff"}, false},
		{"expiry and ttl", tokens.MintRequest{Name: "t", ExpiresAt: mintClock.Add(time.Hour), TTL: time.Hour}, false},
		{"expiry now", tokens.MintRequest{Name: "t", ExpiresAt: mintClock}, false},
		{"expiry 1µs ahead", tokens.MintRequest{Name: "t", ExpiresAt: mintClock.Add(time.Microsecond)}, true},
		{"ttl negative", tokens.MintRequest{Name: "t", TTL: -time.Nanosecond}, false},
		{"external id 256 runes", tokens.MintRequest{Name: "t", Options: tokens.Options{ExternalID: strings.Repeat("é", 256)}}, true},
		{"external id 257 runes", tokens.MintRequest{Name: "t", Options: tokens.Options{ExternalID: strings.Repeat("é", 257)}}, false},
		{"external id invalid UTF-8", tokens.MintRequest{Name: "t", Options: tokens.Options{ExternalID: "a\xff"}}, false},
		{"metadata 4096 bytes", tokens.MintRequest{Name: "t", Options: tokens.Options{Metadata: metadata(tokens.MaxMetadataBytes)}}, true},
		{"metadata 4097 bytes", tokens.MintRequest{Name: "t", Options: tokens.Options{Metadata: metadata(tokens.MaxMetadataBytes + 1)}}, false},
		{"uses 0", tokens.MintRequest{Name: "t", Options: tokens.Options{RemainingUses: int64p(0)}}, false},
		{"uses 1", tokens.MintRequest{Name: "t", Options: tokens.Options{RemainingUses: int64p(1)}}, true},
		{"uses 10^12", tokens.MintRequest{Name: "t", Options: tokens.Options{RemainingUses: int64p(1_000_000_000_000)}}, true},
		{"uses 10^12+1", tokens.MintRequest{Name: "t", Options: tokens.Options{RemainingUses: int64p(1_000_000_000_001)}}, false},
		{"rate 0 per 1s", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 0, RatePeriod: time.Second}}, false},
		{"rate 1 per 0", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1}}, false},
		{"rate 1 per 1s", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1, RatePeriod: time.Second}}, true},
		{"rate 10^6 per 24h", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1_000_000, RatePeriod: 24 * time.Hour}}, true},
		{"rate 10^6+1", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1_000_001, RatePeriod: time.Second}}, false},
		{"period 1s-1µs", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1, RatePeriod: time.Second - time.Microsecond}}, false},
		{"period 24h+1µs", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1, RatePeriod: 24*time.Hour + time.Microsecond}}, false},
		{"period 1.5s+1ns", tokens.MintRequest{Name: "t", Options: tokens.Options{RateLimit: 1, RatePeriod: 1500*time.Millisecond + 1}}, false},
	}
	for _, c := range cases {
		_, err := svc.Mint(ctx, c.req)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case !c.ok && err == nil:
			t.Errorf("%s: minted", c.name)
		case !c.ok && fault.CodeOf(err) != fault.InvalidArgument:
			t.Errorf("%s: %v, want InvalidArgument", c.name, err)
		}
	}
}

// A minted token is stored as asked: expiry from ttl or expireTime (to the
// microsecond), its limits, its hint and pepper, and usage pooled under its
// own id.
//
// Mutations, each seen to fail it: mint.go `expires = now.Add(req.TTL)`
// dropped (`req.TTL > 0` → `< 0`); options.go `apply`'s `l.uses != nil`
// negated; `normalize`'s rate default case not setting `out.rate`.
func TestMintStoresWhatWasAsked(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	m, err := svc.Mint(ctx, tokens.MintRequest{Name: " t ", Scopes: []string{"b", "a", "b"}, TTL: time.Hour,
		Options: tokens.Options{ExternalID: "x-1", RemainingUses: int64p(5), RateLimit: 7, RatePeriod: time.Minute,
			AllowedCIDRs: []string{"10.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.store.GetToken(context.Background(), m.Token.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.Equal(mintClock.Add(time.Hour)) || !got.CreatedAt.Equal(mintClock) {
		t.Errorf("expires %v, created %v; want %v and %v", got.ExpiresAt, got.CreatedAt, mintClock.Add(time.Hour), mintClock)
	}
	if got.Name != "t" || strings.Join(got.Scopes, ",") != "a,b" || got.ExternalID != "x-1" {
		t.Errorf("name %q, scopes %q, external id %q", got.Name, got.Scopes, got.ExternalID)
	}
	if got.UsagePool != got.ID || got.RemainingUses != 5 || got.RateLimit != 7 || got.RatePeriod != time.Minute {
		t.Errorf("pool %q (id %q), uses %d, rate %d per %v", got.UsagePool, got.ID, got.RemainingUses, got.RateLimit, got.RatePeriod)
	}
	if strings.Join(got.AllowedCIDRs, ",") != "10.0.0.1/32" || got.PepperID != f.keys.PrimaryID() ||
		got.Hint != m.Secret[:len("km_")+6] || got.CreatedBy != f.owner.UserID || got.UserID != f.owner.UserID {
		t.Errorf("cidrs %q, pepper %q, hint %q, created by %q, user %q", got.AllowedCIDRs, got.PepperID, got.Hint, got.CreatedBy, got.UserID)
	}
	at := mintClock.Add(time.Hour + 1500) // not a whole microsecond
	m, err = svc.Mint(ctx, tokens.MintRequest{Name: "t", ExpiresAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Truncate(time.Microsecond); !m.Token.ExpiresAt.Equal(want) {
		t.Errorf("expireTime %v stored as %v, want %v", at, m.Token.ExpiresAt, want)
	}
	m, err = svc.Mint(ctx, tokens.MintRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Token.ExpiresAt.IsZero() || m.Token.UsagePool != "" || m.Token.RateLimit != 0 {
		t.Errorf("a token minted without options: expires %v, pool %q, rate %d", m.Token.ExpiresAt, m.Token.UsagePool, m.Token.RateLimit)
	}
}

// Only a password or a session mints; a token cannot mint another token,
// and no principal is Unauthenticated.
//
// Mutations, each seen to fail it: mint.go `p.Method != authn.ByPassword &&
// p.Method != authn.BySession` with either comparison negated, or `&&` →
// `||`; requirePrincipal's `!ok` negated.
func TestMintNeedsPasswordOrSession(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	for _, c := range []struct {
		method authn.Method
		want   fault.Code
	}{{authn.ByToken, fault.PermissionDenied}, {authn.ByPassword, -1}, {authn.BySession, -1}} {
		p := f.owner
		p.Method = c.method
		_, err := svc.Mint(authn.WithPrincipal(context.Background(), p), tokens.MintRequest{Name: "t"})
		if c.want < 0 && err != nil || c.want >= 0 && fault.CodeOf(err) != c.want {
			t.Errorf("method %v: %v, want code %d (-1: minted)", c.method, err, c.want)
		}
	}
	if _, err := svc.Mint(context.Background(), tokens.MintRequest{Name: "t"}); fault.CodeOf(err) != fault.Unauthenticated {
		t.Errorf("no principal: %v, want Unauthenticated", err)
	}
}

// An admin mints for a live service account of their organization; every
// other id is NotFound (a person's, a deleted one's, another
// organization's, not a uuid), and a non-admin is PermissionDenied.
//
// Mutations, each seen to fail it: mint.go owner's `!p.Admin` negated;
// `uuid.Validate(...) != nil` negated; `u.OrgID != p.OrgID`, `u.Kind !=
// store.KindServiceAccount`, `!u.DeletedAt.IsZero()` each negated; the
// `errors.Is(err, store.ErrNotFound)` branch dropped (a store error
// instead of NotFound).
func TestMintForServiceAccount(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	ctx := context.Background()
	user := func(orgID, kind string) string {
		id := uuid.NewString()
		u := store.User{ID: id, OrgID: orgID, Email: id + "@example.com", PasswordHash: "x", Kind: kind}
		if kind == store.KindServiceAccount {
			u.Email, u.PasswordHash, u.Name = store.ServiceAccountEmail(id), "", "sa-"+id
		}
		if err := f.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	other, err := f.store.EnsureOrg(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	sa := user(f.owner.OrgID, store.KindServiceAccount)
	deleted := user(f.owner.OrgID, store.KindServiceAccount)
	if _, err := f.store.DeleteUser(ctx, deleted, mintClock); err != nil {
		t.Fatal(err)
	}
	admin := f.owner
	admin.Admin = true
	for _, c := range []struct {
		name string
		p    authn.Principal
		id   string
		want fault.Code // -1: minted
	}{
		{"the org's service account", admin, sa, -1},
		{"by a non-admin", f.owner, sa, fault.PermissionDenied},
		{"a person", admin, user(f.owner.OrgID, store.KindUser), fault.NotFound},
		{"deleted", admin, deleted, fault.NotFound},
		{"another org's", admin, user(other.ID, store.KindServiceAccount), fault.NotFound},
		{"unknown", admin, uuid.NewString(), fault.NotFound},
		{"not a uuid", admin, "sa-1", fault.NotFound},
	} {
		m, err := svc.Mint(authn.WithPrincipal(ctx, c.p), tokens.MintRequest{Name: "t", ServiceAccountID: c.id})
		switch {
		case c.want < 0 && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want < 0 && (m.Token.UserID != sa || m.Token.OwnerKind != store.KindServiceAccount || m.Token.CreatedBy != admin.UserID):
			t.Errorf("%s: owner %q (%q), created by %q", c.name, m.Token.UserID, m.Token.OwnerKind, m.Token.CreatedBy)
		case c.want >= 0 && fault.CodeOf(err) != c.want:
			t.Errorf("%s: %v, want code %d", c.name, err, c.want)
		}
	}
}

// Get shows a caller their own tokens, an admin their organization's, and
// nobody another organization's or (a non-admin) a colleague's: each is
// NotFound, as an unknown or malformed id is.
//
// Mutations, each seen to fail it: service.go visible's `t.OrgID !=
// p.OrgID` negated, `t.UserID != p.UserID` negated, `!p.Admin` negated,
// `&&` → `||`; `uuid.Parse(id); err != nil` negated; the
// `errors.Is(err, store.ErrNotFound)` branch negated.
func TestGetOnlyWhatTheCallerMaySee(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	ctx := context.Background()
	colleague := f.owner
	colleague.UserID = uuid.NewString()
	if err := f.store.CreateUser(ctx, store.User{ID: colleague.UserID, OrgID: f.owner.OrgID, Email: "b@example.com", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	other, err := f.store.EnsureOrg(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	outsider := authn.Principal{UserID: uuid.NewString(), OrgID: other.ID, Method: authn.ByPassword, Admin: true}
	if err := f.store.CreateUser(ctx, store.User{ID: outsider.UserID, OrgID: other.ID, Email: "c@example.com", PasswordHash: "x", Admin: true}); err != nil {
		t.Fatal(err)
	}
	mine := f.mint(t, svc)
	admin := colleague
	admin.Admin = true
	for _, c := range []struct {
		name string
		p    authn.Principal
		id   string
		ok   bool
	}{
		{"its owner", f.owner, mine.Token.ID, true},
		{"an admin of its org", admin, mine.Token.ID, true},
		{"a colleague", colleague, mine.Token.ID, false},
		{"another org's admin", outsider, mine.Token.ID, false},
		{"an unknown id", f.owner, uuid.NewString(), false},
		{"not a uuid", f.owner, "nope", false},
	} {
		got, err := svc.Get(authn.WithPrincipal(ctx, c.p), c.id)
		switch {
		case c.ok && (err != nil || got.ID != mine.Token.ID):
			t.Errorf("%s: %v %v", c.name, got.ID, err)
		case !c.ok && fault.CodeOf(err) != fault.NotFound:
			t.Errorf("%s: %v, want NotFound", c.name, err)
		}
	}
	if _, err := svc.Get(ctx, mine.Token.ID); fault.CodeOf(err) != fault.Unauthenticated {
		t.Errorf("no principal: %v, want Unauthenticated", err)
	}
}

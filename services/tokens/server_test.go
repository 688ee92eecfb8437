package tokens_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/tokens"
)

// The gRPC methods' conversions, messages to the service and back, each
// field checked (the e2e tests drive them through the wire; these, in the
// package, are what mutation testing runs).

// CreateToken carries every option to Mint and answers with the token as
// stored, its secret, and its uses left and rate; invalid timestamps and
// durations are InvalidArgument.
//
// Mutations, each seen to fail it: server.go `req.ExpireTime != nil`,
// `req.Ttl != nil`, `rl := req.GetRateLimit(); rl != nil` each negated;
// each `CheckValid(); err != nil` negated; toProto's `t.UsagePool != ""`
// and `t.RateLimit > 0` negated, `n, ok := left[...]; ok` negated;
// options.go `len(l.Metadata.GetFields()) > 0` → `>= 0`.
func TestServerCreateToken(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	srv := tokens.NewServer(svc)
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	uses := int64(3)
	resp, err := srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{
		Name: "t", Description: "d", Scopes: []string{"read"}, ExternalId: "x-1",
		Metadata:     &structpb.Struct{Fields: map[string]*structpb.Value{"plan": structpb.NewStringValue("pro")}},
		AllowedCidrs: []string{"10.0.0.0/8"}, RemainingUses: &uses,
		RateLimit: &keymintv1.RateLimit{Limit: 5, Period: durationpb.New(time.Minute)},
		Ttl:       durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetToken()
	if resp.GetSecret() == "" || tok.GetId() == "" || tok.GetName() != "t" || tok.GetDescription() != "d" ||
		!slices.Equal(tok.GetScopes(), []string{"read"}) || tok.GetExternalId() != "x-1" ||
		tok.GetMetadata().GetFields()["plan"].GetStringValue() != "pro" ||
		!slices.Equal(tok.GetAllowedCidrs(), []string{"10.0.0.0/8"}) {
		t.Fatalf("CreateToken answered %v", tok)
	}
	if tok.RemainingUses == nil || *tok.RemainingUses != 3 || tok.GetRateLimit().GetLimit() != 5 ||
		tok.GetRateLimit().GetPeriod().AsDuration() != time.Minute {
		t.Errorf("uses %v, rate %v", tok.RemainingUses, tok.GetRateLimit())
	}
	if !tok.GetExpireTime().AsTime().Equal(mintClock.Add(time.Hour)) || !tok.GetCreateTime().AsTime().Equal(mintClock) ||
		tok.GetStatus() != keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE || tok.GetCreatedBy() != f.owner.UserID ||
		tok.GetUserId() != f.owner.UserID || tok.GetOrganizationId() != f.owner.OrgID || tok.RevokeTime != nil || tok.LastUsedTime != nil {
		t.Errorf("CreateToken answered %v", tok)
	}
	at := mintClock.Add(2 * time.Hour)
	resp, err = srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t", ExpireTime: timestamppb.New(at)})
	if err != nil {
		t.Fatal(err)
	}
	if tok := resp.GetToken(); !tok.GetExpireTime().AsTime().Equal(at) || tok.RemainingUses != nil || tok.RateLimit != nil {
		t.Errorf("with expireTime %v and no limits: %v", at, tok)
	}
	// Empty metadata is none, not "{}".
	resp, err = srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t", Metadata: &structpb.Struct{}})
	if err != nil || resp.GetToken().ExpireTime != nil || resp.GetToken().Metadata != nil {
		t.Errorf("with neither expireTime nor ttl, and empty metadata: %v %v", resp, err)
	}
	for name, req := range map[string]*keymintv1.CreateTokenRequest{
		"expireTime out of range": {Name: "t", ExpireTime: &timestamppb.Timestamp{Seconds: -1 << 62}},
		"ttl out of range":        {Name: "t", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}},
		"rate period invalid":     {Name: "t", RateLimit: &keymintv1.RateLimit{Limit: 1, Period: &durationpb.Duration{Seconds: 1, Nanos: -1}}},
		"rate period missing":     {Name: "t", RateLimit: &keymintv1.RateLimit{Limit: 1}},
	} {
		if _, err := srv.CreateToken(ctx, req); fault.CodeOf(err) != fault.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{}); fault.CodeOf(err) != fault.InvalidArgument {
		t.Errorf("no name: %v, want InvalidArgument", err)
	}
}

// ValidateToken answers a valid token with its ids, scopes, times, kind,
// external id, metadata, allowed CIDRs and uses left; a refusal with its
// reason, no_store and, when rate limited, retry_after.
//
// Mutations, each seen to fail it: server.go `c != ""` negated; `!r.Valid`
// negated; `r.RetryAfter > 0` negated; `e := r.Entry; e != nil` negated;
// `len(e.Metadata) > 0`, `len(e.AllowedCIDRs) > 0`, `e.UsagePool != ""`
// each negated; `proto.Unmarshal(...) == nil` negated; timestampIn's
// `t.IsZero()` negated.
func TestServerValidateToken(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	srv := tokens.NewServer(svc)
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	uses := int64(2)
	created, err := srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{
		Name: "t", Scopes: []string{"read"}, ExternalId: "x-1", Ttl: durationpb.New(time.Hour),
		Metadata:     &structpb.Struct{Fields: map[string]*structpb.Value{"plan": structpb.NewStringValue("pro")}},
		AllowedCidrs: []string{"10.0.0.0/8"}, RemainingUses: &uses,
	})
	if err != nil {
		t.Fatal(err)
	}
	secret := created.GetSecret()
	r, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret, RequiredScopes: []string{"read"}, ClientIp: "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.GetValid() || r.GetTokenId() != created.GetToken().GetId() || r.GetUserId() != f.owner.UserID ||
		r.GetOrganizationId() != f.owner.OrgID || !slices.Equal(r.GetScopes(), []string{"read"}) ||
		!r.GetExpireTime().AsTime().Equal(mintClock.Add(time.Hour)) || !r.GetCreateTime().AsTime().Equal(mintClock) ||
		r.GetPrincipalKind() != keymintv1.PrincipalKind_PRINCIPAL_KIND_USER || r.GetReason() != keymintv1.ValidateTokenResponse_REASON_UNSPECIFIED {
		t.Fatalf("ValidateToken answered %v", r)
	}
	if r.GetExternalId() != "x-1" || r.GetMetadata().GetFields()["plan"].GetStringValue() != "pro" ||
		!slices.Equal(r.GetAllowedCidrs(), []string{"10.0.0.0/8"}) || r.RemainingUses == nil || *r.RemainingUses != 1 || !r.GetNoStore() {
		t.Fatalf("ValidateToken's options: %v", r)
	}
	// Outside the allow-list: refused, no use taken, no token fields.
	r, err = srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret, ClientIp: "192.0.2.1"})
	if err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED || !r.GetNoStore() ||
		r.GetTokenId() != "" || r.RetryAfter != nil {
		t.Fatalf("from outside the allow-list: %v %v", r, err)
	}
	if _, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: secret, ClientIp: "10.0.0.300"}); fault.CodeOf(err) != fault.InvalidArgument {
		t.Fatalf("a bad clientIp: %v, want InvalidArgument", err)
	}
	// A plain token: no options in the answer, and the empty clientIp is
	// no address (not a parse error).
	plain, err := srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	r, err = srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: plain.GetSecret()})
	if err != nil || !r.GetValid() || r.RemainingUses != nil || r.Metadata != nil || r.AllowedCidrs != nil || r.GetNoStore() || r.ExpireTime != nil {
		t.Fatalf("a plain token: %v %v", r, err)
	}
	r, err = srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: "nope"})
	if err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_MALFORMED {
		t.Fatalf("a malformed token: %v %v", r, err)
	}
	// Rate limited: the refusal says when to retry.
	rated, err := srv.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t",
		RateLimit: &keymintv1.RateLimit{Limit: 1, Period: durationpb.New(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		r, err = srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: rated.GetSecret()})
		if err != nil || r.GetValid() != want {
			t.Fatalf("use %d of a 1-per-hour token: %v %v", i+1, r, err)
		}
	}
	if r.GetReason() != keymintv1.ValidateTokenResponse_RATE_LIMITED || r.GetRetryAfter().AsDuration() <= 0 || !r.GetNoStore() {
		t.Fatalf("over the rate: %v", r)
	}
}

// ListTokens maps each status filter to the store's, refuses an unknown
// one and an invalid expiresWithin, and answers each token in full;
// GetToken and RevokeToken (by id or by secret, never both) answer the
// token as it then is.
//
// Mutations, each seen to fail it: server.go each ListTokens status case
// dropped (falls to the unspecified case); the expiresWithin `d != nil`
// and `CheckValid() != nil` negated; RevokeToken's "not both" case `&&` →
// `||` and its `GetToken() != ""` case negated; toProto's RevokeTime and
// status (StatusAt) fields.
func TestServerListGetRevoke(t *testing.T) {
	t.Parallel()
	f, svc := mintService(t)
	srv := tokens.NewServer(svc)
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	mint := func(req *keymintv1.CreateTokenRequest) *keymintv1.CreateTokenResponse {
		t.Helper()
		r, err := srv.CreateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	active := mint(&keymintv1.CreateTokenRequest{Name: "active", Ttl: durationpb.New(48 * time.Hour)})
	soon := mint(&keymintv1.CreateTokenRequest{Name: "soon", Ttl: durationpb.New(time.Hour)})
	byID := mint(&keymintv1.CreateTokenRequest{Name: "by-id"})
	bySecret := mint(&keymintv1.CreateTokenRequest{Name: "by-secret"})

	if _, err := srv.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: byID.GetToken().GetId(), Token: bySecret.GetSecret()}); fault.CodeOf(err) != fault.InvalidArgument {
		t.Fatalf("revoke by id and secret at once: %v, want InvalidArgument", err)
	}
	for _, c := range []*keymintv1.RevokeTokenRequest{{Id: byID.GetToken().GetId()}, {Token: bySecret.GetSecret()}} {
		tok, err := srv.RevokeToken(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if tok.GetStatus() != keymintv1.TokenStatus_TOKEN_STATUS_REVOKED || tok.RevokeTime == nil ||
			(c.Id != "" && tok.GetId() != byID.GetToken().GetId()) || (c.Token != "" && tok.GetId() != bySecret.GetToken().GetId()) {
			t.Fatalf("RevokeToken(%v) answered %v", c, tok)
		}
	}
	if _, err := srv.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Token: "km_nope"}); err == nil {
		t.Fatal("revoking a malformed secret succeeded")
	}
	got, err := srv.GetToken(ctx, &keymintv1.GetTokenRequest{Id: byID.GetToken().GetId()})
	if err != nil || got.GetName() != "by-id" || got.GetStatus() != keymintv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.Fatalf("GetToken of a revoked token: %v %v", got, err)
	}
	if _, err := srv.GetToken(ctx, &keymintv1.GetTokenRequest{Id: "nope"}); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("GetToken of a bad id: %v, want NotFound", err)
	}

	names := func(req *keymintv1.ListTokensRequest) []string {
		t.Helper()
		resp, err := srv.ListTokens(ctx, req)
		if err != nil {
			t.Fatalf("ListTokens(%v): %v", req, err)
		}
		var out []string
		for _, tok := range resp.GetTokens() {
			out = append(out, tok.GetName())
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		req  *keymintv1.ListTokensRequest
		want []string
	}{
		{&keymintv1.ListTokensRequest{}, []string{"active", "soon"}},
		{&keymintv1.ListTokensRequest{ShowInactive: true}, []string{"active", "by-id", "by-secret", "soon"}},
		{&keymintv1.ListTokensRequest{Status: keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE, ShowInactive: true}, []string{"active", "soon"}},
		{&keymintv1.ListTokensRequest{Status: keymintv1.TokenStatus_TOKEN_STATUS_REVOKED}, []string{"by-id", "by-secret"}},
		{&keymintv1.ListTokensRequest{Status: keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED, ShowInactive: true}, nil},
		{&keymintv1.ListTokensRequest{ExpiresWithin: durationpb.New(2 * time.Hour)}, []string{"soon"}},
	} {
		if got := names(c.req); !slices.Equal(got, c.want) {
			t.Errorf("ListTokens(%v) = %q, want %q", c.req, got, c.want)
		}
	}
	for name, req := range map[string]*keymintv1.ListTokensRequest{
		"unknown status":         {Status: keymintv1.TokenStatus(99)},
		"invalid expiresWithin":  {ExpiresWithin: &durationpb.Duration{Seconds: 1, Nanos: -1}},
		"negative expiresWithin": {ExpiresWithin: durationpb.New(-time.Hour)},
	} {
		if _, err := srv.ListTokens(ctx, req); fault.CodeOf(err) != fault.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	resp, err := srv.ListTokens(ctx, &keymintv1.ListTokensRequest{ExpiresWithin: durationpb.New(2 * time.Hour)})
	if err != nil || len(resp.GetTokens()) != 1 {
		t.Fatalf("%v %v", resp, err)
	}
	if tok := resp.GetTokens()[0]; tok.GetId() != soon.GetToken().GetId() || tok.GetHint() != soon.GetToken().GetHint() ||
		tok.GetStatus() != keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE || tok.RevokeTime != nil {
		t.Errorf("listed %v, want %v", tok, soon.GetToken())
	}
	_ = active
}

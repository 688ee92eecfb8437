package tokens_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/tokens"
)

// answerFixture is a TokenService server over a Service with an L1 cache.
func answerFixture(t *testing.T) (*fixture, *tokens.Service, *tokens.Server, *cache.Cache) {
	t.Helper()
	f := newFixture(t)
	c := newL1(t)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Logger: quiet})
	return f, svc, tokens.NewServer(svc), c
}

func validToken(t *testing.T, srv *tokens.Server, req *keymintv1.ValidateTokenRequest) *keymintv1.ValidateTokenResponse {
	t.Helper()
	resp, err := srv.ValidateToken(context.Background(), req)
	if err != nil || !resp.GetValid() {
		t.Fatalf("ValidateToken: %v %v", resp, err)
	}
	return resp
}

// A valid answer is built once per cache entry: the same entry gets the
// same answer, a new entry (here after L1 is flushed, as a refresh or an
// invalidation replaces one) a new one with the same content, and a
// revoked token is refused whatever answer was remembered for it.
//
// Mutation: services/tokens/server.go sharedAnswer's `a.entry == r.Entry`
// → `a != nil` (the answer kept across entries): after the flush the
// answers are the same pointer.
func TestValidAnswerSharedPerEntry(t *testing.T) {
	f, svc, srv, c := answerFixture(t)
	meta, err := structpb.NewStruct(map[string]any{"team": "billing"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := authn.WithPrincipal(context.Background(), f.owner)
	m, err := svc.Mint(ctx, tokens.MintRequest{Name: "t", Scopes: []string{"read"},
		Options: tokens.Options{ExternalID: "x-1", Metadata: meta, AllowedCIDRs: []string{"10.0.0.0/8"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := &keymintv1.ValidateTokenRequest{Token: m.Secret, ClientIp: "10.1.2.3"}
	first := validToken(t, srv, req)
	if first.GetExternalId() != "x-1" || first.GetMetadata().GetFields()["team"].GetStringValue() != "billing" ||
		len(first.GetAllowedCidrs()) != 1 {
		t.Fatalf("answer %v", first)
	}
	want := proto.Clone(first)
	if again := validToken(t, srv, req); again != first {
		t.Error("the same entry's answer was built again")
	}
	// Every check still runs on a remembered answer's token.
	if resp, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: m.Secret, ClientIp: "192.0.2.1"}); err != nil ||
		resp.GetValid() || resp.GetReason() != keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED {
		t.Errorf("from outside the allow-list: %v %v", resp, err)
	}
	if resp, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: m.Secret, ClientIp: "10.1.2.3",
		RequiredScopes: []string{"write"}}); err != nil || resp.GetValid() {
		t.Errorf("a scope the token lacks: %v %v", resp, err)
	}
	c.Flush()
	renewed := validToken(t, srv, req)
	if renewed == first {
		t.Error("a new entry was answered with the old entry's answer")
	}
	if !proto.Equal(renewed, want) || !proto.Equal(first, want) {
		t.Errorf("answers differ: %v, %v, want %v", first, renewed, want)
	}
	if _, err := svc.Revoke(ctx, m.Token.ID); err != nil {
		t.Fatal(err)
	}
	if resp, err := srv.ValidateToken(context.Background(), req); err != nil || resp.GetValid() ||
		resp.GetReason() != keymintv1.ValidateTokenResponse_REVOKED {
		t.Errorf("revoked: %v %v", resp, err)
	}
}

// A usage-limited token's answer carries the uses left, so it is built
// for every call.
//
// Mutation: services/tokens/server.go ValidateToken's `e.UsagePool == ""`
// → `true`: the second answer is the first, with its count.
func TestUsageLimitedAnswerPerCall(t *testing.T) {
	f, svc, srv, _ := answerFixture(t)
	five := int64(5)
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner),
		tokens.MintRequest{Name: "t", Options: tokens.Options{RemainingUses: &five}})
	if err != nil {
		t.Fatal(err)
	}
	req := &keymintv1.ValidateTokenRequest{Token: m.Secret}
	first, second := validToken(t, srv, req), validToken(t, srv, req)
	if first == second || first.GetRemainingUses() != 4 || second.GetRemainingUses() != 3 {
		t.Errorf("uses left %d then %d (same answer: %v), want 4 then 3", first.GetRemainingUses(), second.GetRemainingUses(), first == second)
	}
}

// A shared answer is read by many calls at once, as gRPC marshals it and
// the gateway encodes it: under -race, concurrent validations of one
// token, each marshaling the answer it got, share it without a race.
func TestSharedAnswerConcurrentReads(t *testing.T) {
	f, svc, srv, _ := answerFixture(t)
	m := f.mint(t, svc)
	req := &keymintv1.ValidateTokenRequest{Token: m.Secret}
	want, err := proto.Marshal(validToken(t, srv, req))
	if err != nil {
		t.Fatal(err)
	}
	const callers, calls = 8, 200
	var wg sync.WaitGroup
	errs := make(chan string, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				resp, err := srv.ValidateToken(context.Background(), req)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, err := proto.Marshal(resp)
				if err != nil || string(b) != string(want) {
					errs <- "marshaled answer differs"
					return
				}
				if _, err := protojson.Marshal(resp); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A refusal without a retry time is one shared answer per reason: two
// malformed tokens get the same message, an unknown one another.
//
// Mutation: services/tokens/server.go ValidateToken's `r.RetryAfter <= 0`
// → `false` (a refusal built per call): the two answers differ.
func TestRefusalsShared(t *testing.T) {
	f, svc, srv, _ := answerFixture(t)
	m := f.mint(t, svc)
	refuse := func(token string) *keymintv1.ValidateTokenResponse {
		t.Helper()
		resp, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: token})
		if err != nil || resp.GetValid() {
			t.Fatalf("%v %v", resp, err)
		}
		return resp
	}
	a, b := refuse("garbage"), refuse(m.Secret[:len(m.Secret)-1]+"!")
	if a != b || a.GetReason() != keymintv1.ValidateTokenResponse_MALFORMED || a.GetNoStore() {
		t.Errorf("malformed answers %v and %v (same: %v)", a, b, a == b)
	}
	other, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{Name: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Revoke(authn.WithPrincipal(context.Background(), f.owner), other.Token.ID); err != nil {
		t.Fatal(err)
	}
	if c := refuse(other.Secret); c == a || c.GetReason() != keymintv1.ValidateTokenResponse_REVOKED {
		t.Errorf("revoked answer %v", c)
	}
}

package gateway

import (
	"context"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/recent"
)

// The REST validation route hands the validator the request the body
// says, by the fast codec or protojson, and an empty body is an empty
// request, as on the generated route. Shown failing on ServeHTTP's
// `len(bytes.TrimSpace(body)) > 0` negated (every body dropped) and `>= 0`
// (an empty body handed to protojson, answered 400).
func TestValidateRouteDecodesBody(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got *keymintv1.ValidateTokenRequest
	g := newTestGateway(t, func(c *Config) {
		c.Validate = func(_ context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			mu.Lock()
			got = proto.Clone(req).(*keymintv1.ValidateTokenRequest)
			mu.Unlock()
			return &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_MALFORMED}, nil
		}
	})
	h := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		body string
		want *keymintv1.ValidateTokenRequest
	}{
		{`{"token":"km_a","requiredScopes":["read"],"clientIp":"10.0.0.1"}`, &keymintv1.ValidateTokenRequest{Token: "km_a", RequiredScopes: []string{"read"}, ClientIp: "10.0.0.1"}},
		{`{"token":"km_\u0062"}`, &keymintv1.ValidateTokenRequest{Token: "km_b"}},
		{``, &keymintv1.ValidateTokenRequest{}},
		{" \n", &keymintv1.ValidateTokenRequest{}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		resp, body := doRequest(t, http.MethodPost, g.url+validatePath, tc.body, h, int64(len(tc.body)))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: status %d: %s", tc.body, resp.StatusCode, body)
			continue
		}
		mu.Lock()
		if !proto.Equal(got, tc.want) {
			t.Errorf("%q: the validator got %v, want %v", tc.body, got, tc.want)
		}
		mu.Unlock()
	}
	// A body neither codec reads: 400 with the API's JSON error, and the
	// validator not asked (code 3, InvalidArgument; shown failing on the
	// protojson step's `err != nil` negated).
	mu.Lock()
	got = nil
	mu.Unlock()
	for _, body := range []string{`{"token":`, `[]`, `{"token":1}`} {
		resp, out := doRequest(t, http.MethodPost, g.url+validatePath, body, h, int64(len(body)))
		wantStatusJSON(t, resp, out, http.StatusBadRequest, 3)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != nil {
		t.Errorf("the validator was asked about an unreadable body: %v", got)
	}
}

// With the in-process validator set, it answers POST /v1/tokens:validate
// only: another method there is a 405, and other POST routes reach the gRPC
// server as before. Kills, on 7eede42, gateway.go:225:35 negated (a GET of
// the route handed to the validator) and :225:68 negated (every other POST
// handed to it).
func TestInProcessValidatorOnlyOnItsRoute(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	g := newTestGateway(t, func(c *Config) {
		c.Validate = func(context.Context, *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			calls.Add(1)
			return &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1"}, nil
		}
	})
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {testToken}}
	resp, body := doRequest(t, http.MethodGet, g.url+validatePath, `{"token":"km_a"}`, h, 0)
	wantStatusJSON(t, resp, body, http.StatusMethodNotAllowed, 12)
	if got := resp.Header.Get("Allow"); got != http.MethodPost {
		t.Errorf("GET %s: Allow %q, want POST", validatePath, got)
	}
	resp, body = doRequest(t, http.MethodPost, g.url+"/v1/tokens", `{"name":"n"}`, h, 0)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), testSecret) {
		t.Errorf("POST /v1/tokens = %d %s, want the minted token", resp.StatusCode, body)
	}
	if call := g.fake.lastCall(t); call.method != "CreateToken" {
		t.Errorf("POST /v1/tokens reached %s", call.method)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the validator was called %d times, want 0", n)
	}
}

// A valid answer message the validator answers again is encoded twice
// (once on each of its first two answers) and then answered from the JSON
// kept for it; a new message for the same token is encoded afresh, and a
// usage-limited one (its count changes every call) is never kept.
//
// Mutation: gateway/validate.go serve's `a.resp == resp` → `a != nil`
// (the kept JSON answered for any message of its slot): the new scopes
// are answered with the old JSON.
func TestValidateRouteKeepsSharedAnswers(t *testing.T) {
	t.Parallel()
	var answer atomic.Pointer[keymintv1.ValidateTokenResponse]
	var calls atomic.Int64
	g := newTestGateway(t, func(c *Config) {
		c.Validate = func(context.Context, *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			calls.Add(1)
			return answer.Load(), nil
		}
	})
	h := http.Header{"Content-Type": {"application/json"}}
	const body = `{"token":"km_a"}`
	post := func() string {
		t.Helper()
		resp, b := doRequest(t, http.MethodPost, g.url+validatePath, body, h, int64(len(body)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	route := g.h.(*accessLog).gw.validate
	t1 := maphash.String(answerSeed, "t1")
	// encodedFor is the JSON kept for m under key h, nil for none.
	encodedFor := func(h uint64, m *keymintv1.ValidateTokenResponse) *encodedAnswer {
		return route.encoded.Get(h, func(a *encodedAnswer) bool { return a.resp == m })
	}
	// keptAnywhere reports whether any bucket remembers m.
	keptAnywhere := func(m *keymintv1.ValidateTokenResponse) bool {
		for h := range uint64(recent.Size / 2) {
			if encodedFor(h, m) != nil || route.seen.Get(h, func(s *keymintv1.ValidateTokenResponse) bool { return s == m }) != nil {
				return true
			}
		}
		return false
	}

	read := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", Scopes: []string{"read"}}
	answer.Store(read)
	first := post()
	if !strings.Contains(first, `"scopes":["read"]`) || encodedFor(t1, read) != nil {
		t.Fatalf("first answer %s (kept: %v)", first, encodedFor(t1, read) != nil)
	}
	if second := post(); second != first || encodedFor(t1, read) == nil {
		t.Fatalf("second answer %s, want %s, kept", second, first)
	}
	if third := post(); third != first {
		t.Errorf("kept answer %s, want %s", third, first)
	}

	write := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", Scopes: []string{"write"}}
	answer.Store(write)
	if got := post(); !strings.Contains(got, `"scopes":["write"]`) {
		t.Errorf("a new message for the token answered %s", got)
	}

	five := int64(5)
	limited := &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", RemainingUses: &five}
	answer.Store(limited)
	for range 3 {
		if got := post(); !strings.Contains(got, `"remainingUses":"5"`) {
			t.Errorf("usage-limited answer %s", got)
		}
	}
	if encodedFor(t1, read) == nil || keptAnywhere(limited) {
		t.Error("a usage-limited answer was kept, or replaced the token's kept JSON")
	}

	// Refusals: one kept per reason, not with a retry time.
	malformed := &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_MALFORMED}
	answer.Store(malformed)
	firstRefusal := post()
	if !strings.Contains(firstRefusal, `"reason":"MALFORMED"`) {
		t.Errorf("malformed answer %s", firstRefusal)
	}
	for range 2 {
		if got := post(); got != firstRefusal {
			t.Errorf("malformed answer %s, want %s", got, firstRefusal)
		}
	}
	if encodedFor(2*uint64(keymintv1.ValidateTokenResponse_MALFORMED), malformed) == nil {
		t.Error("the shared refusal's JSON was not kept")
	}
	limitedRate := &keymintv1.ValidateTokenResponse{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, NoStore: true,
		RetryAfter: durationpb.New(time.Second)}
	answer.Store(limitedRate)
	for range 2 {
		if got := post(); !strings.Contains(got, `"retryAfter":"1s"`) {
			t.Errorf("rate-limited answer %s", got)
		}
	}
	if keptAnywhere(limitedRate) {
		t.Error("a refusal with a retry time was kept")
	}
	if calls.Load() != 12 {
		t.Errorf("validator called %d times, want 12: every request validates", calls.Load())
	}
}

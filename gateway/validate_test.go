package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/requestid"
)

// The hand-written codec of the REST validation route must give the same
// values as protojson (the generated route's), or step aside.
func TestValidateFastMatchesProtojson(t *testing.T) {
	t.Parallel()
	accepted := []string{
		`{"token":"km_abc"}`,
		` { "token" : "km_abc" , "requiredScopes" : [ "a" , "b:c" ] } `,
		`{"required_scopes":[],"token":"x"}`,
		`{}`,
		"{\n\t\"token\": \"km_x\"\r\n}",
		`{"token":"km_abc","clientIp":"10.1.2.3"}`,
		`{"client_ip":"2001:db8::1","token":"km_abc","requiredScopes":["a"]}`,
		// The printable ASCII range's two ends (shown failing on plainJSON's
		// `c <= 0x7e` → `c < 0x7e`, which sent '~' to protojson).
		`{"token":" km~"}`,
	}
	stepAside := []string{
		`{"token":"km_\u0061"}`, `{"token":null}`, `{"token":"a","token":"b"}`, `{"bogus":1}`,
		`{"token":"a",}`, `{"clientIp":"a","client_ip":"b"}`, `{"clientIp":1}`, `{"token":"a"} x`, `{"requiredScopes":["a"],"required_scopes":["b"]}`,
		`{"token":"é"}`, `[]`, `{"token":1}`, `{"requiredScopes":"a"}`, `{"Token":"a"}`,
		// Cut short where the scanner looks at the next byte, or is inside a
		// string (shown failing, with an index-out-of-range panic, on peek's
		// `p.i < len(p.b)` → `<=` and str's `i < len(b)` → `<=`).
		`{`, `{"token":"km_a",`, `{"token":"km_a" `, `{"requiredScopes":[`, `{"requiredScopes":["a", `, `{"token":"km_a`,
	}
	for _, body := range accepted {
		var fast, slow keymintv1.ValidateTokenRequest
		if !decodeValidateFast([]byte(body), &fast) {
			t.Errorf("%s: fast path refused it", body)
			continue
		}
		if err := protojson.Unmarshal([]byte(body), &slow); err != nil {
			t.Errorf("%s: protojson refuses what the fast path takes: %v", body, err)
			continue
		}
		if !proto.Equal(&fast, &slow) {
			t.Errorf("%s: fast %v, protojson %v", body, &fast, &slow)
		}
	}
	for _, body := range stepAside {
		var req keymintv1.ValidateTokenRequest
		if decodeValidateFast([]byte(body), &req) {
			t.Errorf("%s: fast path took it", body)
		}
	}

	expiry := timestamppb.New(time.Date(2031, 2, 3, 4, 5, 6, 7_000_000, time.UTC))
	for _, resp := range []*keymintv1.ValidateTokenResponse{
		{Valid: true, TokenId: "t", UserId: "u", OrganizationId: "o", Scopes: []string{"read", "keymint:admin"}},
		{Valid: true, TokenId: "t", Scopes: nil, ExpireTime: expiry},
		{Valid: true, TokenId: "t", ExpireTime: expiry, CreateTime: timestamppb.New(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC))},
		{ExpireTime: timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))},
		{ExpireTime: timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 123_456_000, time.UTC))},
		{ExpireTime: timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 1, time.UTC))},
		{Reason: keymintv1.ValidateTokenResponse_REVOKED, TokenId: "t"},
		{Reason: keymintv1.ValidateTokenResponse_MALFORMED},
		{Valid: true, TokenId: "t", ExternalId: "user-42", AllowedCidrs: []string{"10.0.0.0/8", "2001:db8::/32"},
			RemainingUses: proto.Int64(7), NoStore: true},
		{Valid: true, RemainingUses: proto.Int64(0)},
		{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, RetryAfter: durationpb.New(1500 * time.Millisecond), NoStore: true},
		{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, RetryAfter: durationpb.New(2 * time.Second)},
		{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, RetryAfter: durationpb.New(time.Nanosecond)},
		{Reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, RetryAfter: durationpb.New(1234567 * time.Microsecond)},
		{Reason: keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED, NoStore: true},
		{Reason: keymintv1.ValidateTokenResponse_USAGE_EXHAUSTED},
	} {
		fast, ok := appendValidateFast(nil, resp)
		if !ok {
			t.Errorf("%v: fast path refused it", resp)
			continue
		}
		slow, err := newMarshaler().Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("fast output %s is not JSON: %v", fast, err)
		}
		_ = json.Unmarshal(slow, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("fast %s\nprotojson %s", fast, slow)
		}
	}
	for _, resp := range []*keymintv1.ValidateTokenResponse{
		{TokenId: `quote"`}, {Scopes: []string{"é"}}, {Reason: 99},
		{ExpireTime: &timestamppb.Timestamp{Seconds: -1e12}}, {CreateTime: &timestamppb.Timestamp{Seconds: -1e12}},
		{Valid: true, Metadata: &structpb.Struct{}}, {ExternalId: "é"}, {AllowedCidrs: []string{`"`}},
		{RetryAfter: &durationpb.Duration{Seconds: -1}},
	} {
		if _, ok := appendValidateFast(nil, resp); ok {
			t.Errorf("%v: fast path took it", resp)
		}
	}
}

func FuzzValidateFastDecode(f *testing.F) {
	f.Add(`{"token":"km_abc","requiredScopes":["a"]}`)
	f.Add(`{"required_scopes":[],"token":""}`)
	f.Fuzz(func(t *testing.T, body string) {
		var fast, slow keymintv1.ValidateTokenRequest
		if !decodeValidateFast([]byte(body), &fast) {
			return
		}
		if err := protojson.Unmarshal([]byte(body), &slow); err != nil {
			t.Fatalf("%q: fast path took what protojson refuses: %v", body, err)
		}
		if !proto.Equal(&fast, &slow) {
			t.Fatalf("%q: fast %v, protojson %v", body, &fast, &slow)
		}
	})
}

// FuzzValidateFastEncode: whatever answer the hand-written encoder takes, it
// writes the same JSON value as protojson (the generated route's encoder);
// what it refuses goes to protojson anyway.
//
// Mutation: gateway/validate.go appendValidateFast trims retryAfter's
// fraction in 6-digit steps, `len(frac) > 3` → `len(frac) > 6` (the
// seeds with millisecond fractions catch it).
func FuzzValidateFastEncode(f *testing.F) {
	f.Add(true, int32(0), "t", "u", "o", "ext", "read", "10.0.0.0/8", false, true, int64(7), false, int64(0), int32(0), true, int64(1_900_000_000), int32(0))
	f.Add(false, int32(6), "", "", "", "", "", "", true, false, int64(0), true, int64(2), int32(0), false, int64(0), int32(0))
	// Fractions of each width protojson writes: 3, 6 and 9 digits.
	for _, n := range []int32{500_000_000, 123_456_000, 1} {
		f.Add(false, int32(6), "", "", "", "", "", "", true, false, int64(0), true, int64(1), n, true, int64(1_900_000_000), n)
	}
	f.Fuzz(func(t *testing.T, valid bool, reason int32, tokenID, userID, orgID, externalID, scope, cidr string,
		noStore, hasUses bool, uses int64, hasRetry bool, retrySec int64, retryNanos int32, hasExpiry bool, expSec int64, expNanos int32) {
		r := &keymintv1.ValidateTokenResponse{Valid: valid, Reason: keymintv1.ValidateTokenResponse_Reason(reason),
			TokenId: tokenID, UserId: userID, OrganizationId: orgID, ExternalId: externalID, NoStore: noStore}
		if scope != "" {
			r.Scopes = []string{scope, scope + "x"}
		}
		if cidr != "" {
			r.AllowedCidrs = []string{cidr}
		}
		if hasUses {
			r.RemainingUses = proto.Int64(uses)
		}
		if hasRetry {
			r.RetryAfter = &durationpb.Duration{Seconds: retrySec, Nanos: retryNanos}
		}
		if hasExpiry {
			r.ExpireTime = &timestamppb.Timestamp{Seconds: expSec, Nanos: expNanos}
		}
		fast, ok := appendValidateFast(nil, r)
		if !ok {
			return
		}
		slow, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(r)
		if err != nil {
			t.Fatalf("%v: the fast encoder wrote %s for what protojson refuses: %v", r, fast, err)
		}
		var a, b any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("%v: fast output %s is not JSON: %v", r, fast, err)
		}
		if err := json.Unmarshal(slow, &b); err != nil {
			t.Fatal(err)
		}
		// The API leaves REASON_UNSPECIFIED (a valid answer) out, on the
		// fast path as in the gateway's marshaler.
		if m, ok := b.(map[string]any); ok && m["reason"] == "REASON_UNSPECIFIED" {
			delete(m, "reason")
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("fast %s\nprotojson %s", fast, slow)
		}
	})
}

// The in-process validation route, the REST hot path, keeps the gateway's
// checks: the security headers on every answer, the body limit (declared
// and chunked), an access log line, and the token never in the log.
func TestValidateRouteKeepsChecks(t *testing.T) {
	t.Parallel()
	const limit = 256
	var calls atomic.Int64
	g := newTestGateway(t, func(c *Config) {
		c.MaxBodyBytes = limit
		c.Validate = func(_ context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			calls.Add(1)
			return &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1", Scopes: []string{"read"}}, nil
		}
	})
	const secret = "km_secretvalue0123456789"
	h := http.Header{"Content-Type": {"application/json"}}
	resp, body := doRequest(t, http.MethodPost, g.url+validatePath, `{"token":"`+secret+`"}`, h, 0)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"tokenId":"t1"`) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		"Content-Security-Policy": apiCSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Content-Type": "application/json"} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	big := `{"token":"` + strings.Repeat("a", 2*limit) + `"}`
	for _, cl := range []int64{int64(len(big)), -1} {
		resp, body := doRequest(t, http.MethodPost, g.url+validatePath, big, h, cl)
		wantStatusJSON(t, resp, body, http.StatusRequestEntityTooLarge, 8)
		if resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("413 without the security headers: %v", resp.Header)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("validator called %d times, want 1 (oversize bodies must not reach it)", n)
	}
	logs := g.logs.String()
	if strings.Contains(logs, secret) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
	var routes []string
	for _, l := range logLines(t, logs, "http") {
		routes = append(routes, fmt.Sprint(l["route"], " ", l["status"]))
	}
	for _, want := range []string{"POST " + validatePath + " 200", "POST " + validatePath + " 413"} {
		if !slices.Contains(routes, want) {
			t.Errorf("no access log line %q; got %q", want, routes)
		}
	}
}

// TestAppendTimestampMatchesProtojson: the hand-written timestamp is
// protojson's over the whole valid range (years 1 to 9999, both ends, leap
// days, every fraction width), not only around today.
func TestAppendTimestampMatchesProtojson(t *testing.T) {
	const minSec, maxSec = -62135596800, 253402300799 // 0001-01-01, 9999-12-31T23:59:59
	secs := []int64{minSec, maxSec, 0, -1, 1, 951782400, 951868800, 4107542400, -2203891200, 1_900_000_000}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		secs = append(secs, minSec+rng.Int64N(maxSec-minSec+1))
	}
	for i, sec := range secs {
		nanos := []int32{0, 500_000_000, 123_456_000, 1, 999_999_999}[i%5]
		ts := &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
		want, err := protojson.Marshal(ts)
		if err != nil {
			t.Fatal(err)
		}
		got := append([]byte{'"'}, appendTimestamp(nil, ts)...)
		if got = append(got, '"'); string(got) != string(want) {
			t.Fatalf("%v: got %s, protojson %s", ts, got, want)
		}
	}
}

// TestValidateDirectRoute: the access log serves a plain validation by the
// direct route, in a context that carries the request id it answers with;
// a validation any gateway check would act on goes the generic way and gets
// that check's answer without reaching the validator.
func TestValidateDirectRoute(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var seenID atomic.Value
	g := newTestGateway(t, func(c *Config) {
		c.Validate = func(ctx context.Context, _ *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
			calls.Add(1)
			seenID.Store(requestid.From(ctx))
			return &keymintv1.ValidateTokenResponse{Valid: true, TokenId: "t1"}, nil
		}
	})
	body := `{"token":"km_x"}`
	json := http.Header{"Content-Type": {"application/json"}}
	for _, in := range []string{"", "caller-id-1"} {
		h := json.Clone()
		if in != "" {
			h.Set("X-Request-Id", in)
		}
		resp, b := doRequest(t, http.MethodPost, g.url+validatePath, body, h, 0)
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusOK || id == "" || seenID.Load() != id || (in != "" && id != in) {
			t.Fatalf("X-Request-Id %q in, %q out, %v seen by the validator: %d %s", in, id, seenID.Load(), resp.StatusCode, b)
		}
	}
	refused := []struct {
		name   string
		path   string
		header http.Header
		status int
	}{
		{"query", validatePath + "?x=1", json, http.StatusBadRequest},
		{"credential headers over the limit", validatePath, http.Header{"Content-Type": {"application/json"},
			"Authorization": {"Bearer " + strings.Repeat("a", maxForwardedHeaderBytes)}}, http.StatusRequestHeaderFieldsTooLarge},
		{"cookie from another site", validatePath, http.Header{"Content-Type": {"application/json"},
			"Cookie": {cookieName + "=s1"}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
	}
	for _, c := range refused {
		resp, b := doRequest(t, http.MethodPost, g.url+c.path, body, c.header, 0)
		if resp.StatusCode != c.status || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: %d %v %s, want %d with the security headers and a request id", c.name, resp.StatusCode, resp.Header, b, c.status)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("validator called %d times, want 2", n)
	}
}

// TestFastValidation: what the direct route takes, and what it leaves to
// ServeHTTP's checks.
func TestFastValidation(t *testing.T) {
	g := &gateway{validate: &validateRoute{}, maxBody: 100}
	cases := []struct {
		name   string
		edit   func(r *http.Request)
		direct bool
	}{
		{"plain", func(*http.Request) {}, true},
		{"empty body", func(r *http.Request) { r.ContentLength = 0 }, true},
		{"a token header", func(r *http.Request) { r.Header.Set("Authorization", "Bearer km_x") }, true},
		{"GET", func(r *http.Request) { r.Method = http.MethodGet }, false},
		{"another path", func(r *http.Request) { r.URL.Path = "/v1/tokens" }, false},
		{"a query", func(r *http.Request) { r.URL.RawQuery = "a=b" }, false},
		{"chunked", func(r *http.Request) { r.ContentLength = -1 }, false},
		{"over the limit", func(r *http.Request) { r.ContentLength = 101 }, false},
		// gateway.go:247:42 `>` → `>=` (on 7eede42) sent it the generic way.
		{"at the limit", func(r *http.Request) { r.ContentLength = 100 }, true},
		{"a cookie", func(r *http.Request) { r.Header.Set("Cookie", "x=y") }, false},
		{"credentials over the limit", func(r *http.Request) {
			r.Header.Set("X-Api-Password", strings.Repeat("p", maxForwardedHeaderBytes))
		}, false},
		{"credentials at the limit", func(r *http.Request) {
			r.Header.Set("X-Api-Password", strings.Repeat("p", maxForwardedHeaderBytes-len("X-Api-Password")))
		}, true},
		{"credentials over the limit together", func(r *http.Request) {
			r.Header.Set("X-Api-Password", strings.Repeat("p", maxForwardedHeaderBytes/2))
			r.Header.Set("Authorization", strings.Repeat("a", maxForwardedHeaderBytes/2))
		}, false},
		{"another header of any size", func(r *http.Request) { r.Header.Set("X-Other", strings.Repeat("o", 2*maxForwardedHeaderBytes)) }, true},
	}
	// Every header stripHeaders drops sends a request the generic way.
	// Mutation: any of strippedHeaders, or the cookie, left out of
	// fastValidation's test fails its case here.
	for _, h := range strippedHeaders {
		cases = append(cases, struct {
			name   string
			edit   func(r *http.Request)
			direct bool
		}{h, func(r *http.Request) { r.Header[h] = []string{"x"} }, false})
	}
	for _, c := range cases {
		r, _ := http.NewRequest(http.MethodPost, "http://keymint"+validatePath, strings.NewReader("{}"))
		r.ContentLength = 2
		c.edit(r)
		if got := g.fastValidation(r); got != c.direct {
			t.Errorf("%s: fastValidation = %v, want %v", c.name, got, c.direct)
		}
	}
	if (&gateway{maxBody: 100}).fastValidation(httptest.NewRequest(http.MethodPost, validatePath, nil)) {
		t.Error("no in-process validator: no direct route")
	}
}

// TestPlainWord: plainWord is plainJSON for 8 bytes at once, for every byte
// value in every position and for random words.
func TestPlainWord(t *testing.T) {
	table := func(w [8]byte) bool {
		for _, c := range w {
			if !plainJSON[c] {
				return false
			}
		}
		return true
	}
	check := func(w [8]byte) {
		if got, want := plainWord(binary.LittleEndian.Uint64(w[:])), table(w); got != want {
			t.Fatalf("plainWord(% x) = %v, want %v", w, got, want)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[pos] = byte(c)
			check(w)
			w = [8]byte{0x7e, 0x20, 0x7e, 0x20, 0x7e, 0x20, 0x7e, 0x20}
			w[pos] = byte(c)
			check(w)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		for i := range w {
			if rng.IntN(4) > 0 { // mostly plain, so both answers occur
				w[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		check(w)
	}
}

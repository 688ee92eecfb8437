package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
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
	}
	stepAside := []string{
		`{"token":"km_\u0061"}`, `{"token":null}`, `{"token":"a","token":"b"}`, `{"bogus":1}`,
		`{"token":"a",}`, `{"clientIp":"a","client_ip":"b"}`, `{"clientIp":1}`, `{"token":"a"} x`, `{"requiredScopes":["a"],"required_scopes":["b"]}`,
		`{"token":"é"}`, `[]`, `{"token":1}`, `{"requiredScopes":"a"}`, `{"Token":"a"}`,
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
		{ExpireTime: &timestamppb.Timestamp{Seconds: -1e12}},
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

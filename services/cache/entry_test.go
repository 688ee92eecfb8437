package cache

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []Entry{
		{Key: key(1), TokenID: "t", UserID: "u", OrgID: "o", PepperID: "1", Scopes: []string{"a", "b:c"},
			ExpiresAt: time.UnixMicro(1_900_000_000_123_456).UTC(), RevokedAt: time.UnixMicro(1_800_000_000_000_001).UTC()},
		{Key: key(2), Negative: true},
		{Key: key(3), TokenID: "t", ExpiresAt: time.UnixMicro(-5).UTC()},
		{Key: key(7), TokenID: "t", ExternalID: "user-42", Metadata: []byte{0x0a, 0x01, 'x'},
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
			UsagePool:    "p", RemainingUses: 10, RateLimit: 5, RatePeriod: time.Minute},
		{Key: key(8), TokenID: "t", CreatedAt: time.UnixMicro(1_700_000_000_654_321).UTC()},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
}

// A later writer's fields are skipped, not refused.
func TestEntryDecodeSkipsUnknownFields(t *testing.T) {
	t.Parallel()
	e := Entry{Key: key(4), TokenID: "t"}
	b, _ := e.MarshalBinary()
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	b = protowire.AppendString(b, "cidr allow-list, say")
	b = protowire.AppendTag(b, 100, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	var got Entry
	if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestEntryDecodeRefusesGarbage(t *testing.T) {
	t.Parallel()
	good, _ := (&Entry{Key: key(5)}).MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version 2":      append([]byte{2}, good[1:]...),
		"no key":         {encodingV1},
		"short key":      append([]byte{encodingV1}, protowire.AppendBytes(protowire.AppendTag(nil, fieldKey, protowire.BytesType), []byte("x"))...),
		"truncated":      good[:len(good)-3],
		"wrong key type": append([]byte{encodingV1}, protowire.AppendVarint(protowire.AppendTag(nil, fieldKey, protowire.VarintType), 1)...),
	} {
		var e Entry
		if err := e.UnmarshalBinary(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzEntryDecode(f *testing.F) {
	good, _ := (&Entry{Key: key(6), TokenID: "t", Scopes: []string{"s"}}).MarshalBinary()
	f.Add(good)
	f.Add([]byte{encodingV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if e.UnmarshalBinary(b) != nil {
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var e2 Entry
		if err := e2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoding changed the entry: %+v vs %+v (%v)", e, e2, err)
		}
	})
}

package cache

import (
	"encoding/hex"
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
		// The last fields of the table (shown failing on fieldOf's
		// `int(num) > len(entryFields)` → `>=`, which dropped the last).
		{Key: key(9), TokenID: "t", OwnerKind: "service", RevokeReason: "leaked"},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got, fromString Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
		if err := fromString.UnmarshalString(string(b)); err != nil || !reflect.DeepEqual(fromString, e) {
			t.Fatalf("round trip through a string (%v):\n got %+v\nwant %+v", err, fromString, e)
		}
	}
}

// Values written before the codec became the entryFields table (captured from
// that encoder) still decode: entries already in Redis keep answering.
func TestEntryDecodesEarlierValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hex  string
		want Entry
	}{
		{"010a205a000000000000000000000000000000000000000000000000000000000000001a05746f6b2d312206757365722d312a056f72672d3132013252066578742d34326a06706f6f6c2d313a06613a726561643a07623a7772697465408089a591c782e006488280c489e5c5b2068801e2efc182838985065a030a0178620a31302e302e302e302f38620d323030313a6462383a3a2f33327005780a8001809c9c39",
			Entry{Key: key(0x5a), TokenID: "tok-1", UserID: "user-1", OrgID: "org-1", PepperID: "2", Scopes: []string{"a:read", "b:write"},
				ExpiresAt: time.UnixMicro(1_900_000_000_123_456).UTC(), RevokedAt: time.UnixMicro(1_800_000_000_000_001).UTC(),
				ExternalID: "ext-42", Metadata: []byte{0x0a, 0x01, 'x'},
				AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
				UsagePool:    "pool-1", RemainingUses: -3, RateLimit: 5, RatePeriod: time.Minute, CreatedAt: time.UnixMicro(1_700_000_000_654_321).UTC()}},
		{"010a205b000000000000000000000000000000000000000000000000000000000000001001", Entry{Key: key(0x5b), Negative: true}},
	} {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatal(err)
		}
		var got Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("decoded\n got %+v\nwant %+v", got, tc.want)
		}
	}
}

// entryFields is indexed by field number: field n must sit at n-1, every
// field must be appendable and readable in its wire type.
func TestEntryFieldsTable(t *testing.T) {
	t.Parallel()
	for i, f := range entryFields {
		if int(f.num) != i+1 {
			t.Errorf("entryFields[%d] is field %d, want %d", i, f.num, i+1)
		}
		if f.append == nil || (f.typ == protowire.BytesType) != (f.bytes != nil) || (f.typ == protowire.VarintType) != (f.varint != nil) {
			t.Errorf("field %d: codec functions do not match wire type %v", f.num, f.typ)
		}
	}
}

// A known field number sent with another wire type is skipped, not misread.
func TestEntryDecodeSkipsWrongWireType(t *testing.T) {
	t.Parallel()
	e := Entry{Key: key(10), TokenID: "t"}
	b, _ := e.MarshalBinary()
	b = protowire.AppendTag(b, fieldUserID, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, fieldExpiresAt, protowire.BytesType)
	b = protowire.AppendString(b, "not a time")
	var got Entry
	if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v, %v", got, err)
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
		var e, fromString Entry
		err := e.UnmarshalBinary(b)
		// A Redis reply decodes as the same bytes do, or fails alike.
		if errString := fromString.UnmarshalString(string(b)); (err == nil) != (errString == nil) || err == nil && !reflect.DeepEqual(e, fromString) {
			t.Fatalf("string decode differs: %+v (%v) vs %+v (%v)", fromString, errString, e, err)
		}
		if err != nil {
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

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add([]byte("k"), false, "t", "u", "o", "1", "a:read", int64(1_900_000_000_123_456), int64(0), "ext", []byte{1}, "10.0.0.0/8", "p", int64(3), int64(5), int64(60_000_000), int64(1))
	f.Fuzz(func(t *testing.T, k []byte, negative bool, tokenID, userID, orgID, pepperID, scope string, expires, revoked int64,
		externalID string, metadata []byte, cidr, pool string, remaining, rateLimit, periodMicros, created int64) {
		e := Entry{Negative: negative, TokenID: tokenID, UserID: userID, OrgID: orgID, PepperID: pepperID,
			ExternalID: externalID, UsagePool: pool, RemainingUses: remaining, RateLimit: rateLimit,
			RatePeriod: time.Duration(periodMicros%(1<<40)) * time.Microsecond}
		copy(e.Key[:], k)
		if scope != "" {
			e.Scopes = []string{scope}
		}
		if len(metadata) > 0 {
			e.Metadata = metadata
		}
		if p, err := netip.ParsePrefix(cidr); err == nil {
			e.AllowedCIDRs = []netip.Prefix{p}
		}
		for _, tm := range []struct {
			at *time.Time
			us int64
		}{{&e.ExpiresAt, expires}, {&e.RevokedAt, revoked}, {&e.CreatedAt, created}} {
			if tm.us != 0 {
				*tm.at = time.UnixMicro(tm.us % (1 << 53)).UTC()
			}
		}
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
	})
}

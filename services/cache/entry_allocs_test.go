//go:build !race

// testing.AllocsPerRun is unreliable under the race detector, whose
// instrumentation allocates; scripts/test.sh runs this file without -race.

package cache

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// MarshalBinary sizes its buffer once: an L2 fill of a large entry (every
// variable field long) allocates the value and the CIDRs' texts, no more. Shown failing on each of
// the capacity estimate's terms mutated (`+` → `-`, `*` → `/`: 10 gremlins
// survivors), each of which made the buffer grow.
func TestEntryMarshalAllocatesOnce(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 300) }
	e := Entry{Key: key(1), TokenID: long("t"), UserID: long("u"), OrgID: long("o"), PepperID: "1",
		ExpiresAt: time.UnixMicro(1_900_000_000_123_456), ExternalID: long("x"), Metadata: []byte(long("m")),
		UsagePool: long("p"), RemainingUses: 1 << 40, OwnerKind: long("k"), RevokeReason: long("r")}
	for i := range 40 {
		e.Scopes = append(e.Scopes, "scope:"+strings.Repeat(string(rune('a'+i%26)), 8))
		e.AllowedCIDRs = append(e.AllowedCIDRs, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i + 1)}), 48))
	}
	// Each CIDR is written in its text form (netip's String allocates).
	texts := testing.AllocsPerRun(100, func() {
		for _, p := range e.AllowedCIDRs {
			_ = p.String()
		}
	})
	if n := testing.AllocsPerRun(100, func() {
		if _, err := e.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}); n != 1+texts {
		t.Fatalf("MarshalBinary: %v allocations, want 1 (the value) + %v (the CIDRs' texts)", n, texts)
	}
}

// UnmarshalString, which rediscache's Get decodes every L2 hit with,
// copies nothing it can share with the reply: an entry with every text
// field set allocates its scopes slice and its metadata copy, no more
// (UnmarshalBinary also copies each text).
func TestEntryUnmarshalStringSharesText(t *testing.T) {
	e := Entry{Key: key(1), TokenID: "tok-1", UserID: "user-1", OrgID: "org-1", PepperID: "1",
		Scopes: []string{"a:read"}, ExternalID: "ext", Metadata: []byte{0x0a, 0x01, 'x'}, UsagePool: "pool",
		OwnerKind: "service", RevokeReason: "leaked", AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v := string(b)
	var got Entry
	// The scopes slice, the CIDRs slice and the metadata copy.
	if n := testing.AllocsPerRun(100, func() {
		if err := got.UnmarshalString(v); err != nil {
			t.Fatal(err)
		}
	}); n != 3 {
		t.Fatalf("UnmarshalString: %v allocations, want 3", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
	}); n != 3+9 {
		t.Fatalf("UnmarshalBinary: %v allocations, want 3 + 9 texts", n)
	}
}

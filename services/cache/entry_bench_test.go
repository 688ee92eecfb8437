package cache

import (
	"net/netip"
	"testing"
	"time"
)

// benchEntry is a typical cached token: a few scopes, an expiry, metadata
// and an allow-list.
var benchEntry = Entry{Key: key(9), TokenID: "0193c0de-7b5a-7f00-8000-00000000abcd", UserID: "0193c0de-7b5a-7f00-8000-00000000u001",
	OrgID: "0193c0de-7b5a-7f00-8000-00000000o001", PepperID: "1", Scopes: []string{"billing:read", "reports:read", "reports:write"},
	ExpiresAt: time.UnixMicro(1_900_000_000_123_456).UTC(), CreatedAt: time.UnixMicro(1_700_000_000_654_321).UTC(),
	ExternalID: "customer-42", Metadata: []byte{0x0a, 0x05, 't', 'e', 'a', 'm', 's'},
	AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, RateLimit: 100, RatePeriod: time.Minute}

func BenchmarkEntryMarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := benchEntry.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// entrySink keeps the decoded entry on the heap, as rediscache's Get
// does (it returns the pointer).
var entrySink *Entry

// BenchmarkEntryUnmarshal decodes as rediscache's Get does.
func BenchmarkEntryUnmarshal(b *testing.B) {
	v, err := benchEntry.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e := new(Entry)
		if err := e.UnmarshalBinary(v); err != nil {
			b.Fatal(err)
		}
		entrySink = e
	}
}

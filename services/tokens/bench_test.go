package tokens_test

import (
	"context"
	"testing"

	"github.com/keymint/keymint/services/tokens"
)

// The validation hot path piece by piece, then whole: parse (format and
// checksum), HMAC under the primary pepper, L1 probe, then Validate on a
// cached token with scope and expiry checks and last-use recording.
// Run: go test -run XXX -bench . -benchmem ./services/tokens

func BenchmarkPrimaryDigest(b *testing.B) {
	f := newBenchFixture(b)
	s, _ := f.fmt.Generate()
	b.ReportAllocs()
	for b.Loop() {
		_ = f.keys.PrimaryArray(s)
	}
}

func BenchmarkValidateCached(b *testing.B) {
	f := newBenchFixture(b)
	c := newL1(b)
	usage := tokens.NewUsageRecorder(f.store, 0, nil)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Usage: usage, Logger: quiet})
	m := f.mint(b, svc)
	required := []string{"read"}
	if r, err := svc.Validate(context.Background(), m.Secret, required); err != nil || !r.Valid {
		b.Fatalf("%+v %v", r, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r, err := svc.Validate(context.Background(), m.Secret, required); err != nil || !r.Valid {
				b.Errorf("%+v %v", r, err)
				return
			}
		}
	})
}

func newBenchFixture(b *testing.B) *fixture { return newFixture(b) }

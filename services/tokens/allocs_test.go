//go:build !race

// testing.AllocsPerRun is unreliable under the race detector, whose
// instrumentation allocates; make test runs with -race, so this file runs
// in plain `go test` (and `make mutate`).

package tokens_test

import (
	"context"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/tokens"
)

// The README's "0 allocs/op": the format check, the primary-pepper HMAC and
// a whole cached Validate (length, HMAC, L1 probe, scope and expiry checks,
// last-use record) allocate nothing.
//
// Mutation: services/tokens/keyring.go PrimaryArray hashes through the
// allocating path, `return k.digestArray(0, secret)` →
// `return [32]byte(k.digest(nil, 0, secret))`.
func TestValidationPathAllocatesNothing(t *testing.T) {
	f := newFixture(t)
	c := newL1(t)
	usage := tokens.NewUsageRecorder(f.store, 0, nil)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Usage: usage, Logger: quiet})
	m := f.mint(t, svc)
	required := []string{"read"}
	ctx := context.Background()
	if r, err := svc.Validate(ctx, m.Secret, required); err != nil || !r.Valid {
		t.Fatalf("%+v %v", r, err)
	}
	for name, fn := range map[string]func(){
		"Format.Check": func() {
			if f.fmt.Check(m.Secret) != nil {
				t.Fatal("check failed")
			}
		},
		"PrimaryArray": func() { _ = f.keys.PrimaryArray(m.Secret) },
		"Validate (cached)": func() {
			if r, err := svc.Validate(ctx, m.Secret, required); err != nil || !r.Valid {
				t.Fatalf("%+v %v", r, err)
			}
		},
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}

// TestValidateTokenAllocations: the gRPC (and in-process REST) ValidateToken
// of a cached token allocates nothing (its answer is built once per cache
// entry, timestamps included, in one allocation: validAnswer), nor does a
// malformed one (refusals are shared), and neither the validation's
// result, which taking &r.Remaining once moved to the heap on every call.
//
// Mutation: services/tokens/server.go sharedAnswer's `s.answers.Put(...)`
// removed: every call builds its answer.
func TestValidateTokenAllocations(t *testing.T) {
	f, svc, srv, _ := answerFixture(t)
	m := f.mint(t, svc)
	ctx := context.Background()
	valid := &keymintv1.ValidateTokenRequest{Token: m.Secret}
	malformed := &keymintv1.ValidateTokenRequest{Token: m.Secret[:len(m.Secret)-1] + "!"}
	resp, err := srv.ValidateToken(ctx, valid)
	if err != nil || !resp.GetValid() || resp.GetCreateTime() == nil || resp.GetExpireTime() != nil {
		t.Fatalf("%v %v", resp, err)
	}
	for name, c := range map[string]struct {
		req  *keymintv1.ValidateTokenRequest
		want float64
	}{"cached": {valid, 0}, "malformed": {malformed, 0}} {
		n := testing.AllocsPerRun(1000, func() {
			if _, err := srv.ValidateToken(ctx, c.req); err != nil {
				t.Fatal(err)
			}
		})
		if n != c.want {
			t.Errorf("%s: %v allocs per call, want %v", name, n, c.want)
		}
	}
}

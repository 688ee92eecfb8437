package tokens_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/tokens"
)

func TestNormalizeCIDRs(t *testing.T) {
	t.Parallel()
	got, err := tokens.NormalizeCIDRs([]string{" 10.1.2.3/8", "10.0.0.0/8", "192.168.1.7", "2001:db8::1/32", "::ffff:10.0.0.0/104"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"}; !slices.Equal(got, want) {
		t.Fatalf("NormalizeCIDRs = %q, want %q", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "fe80::1%eth0", "10.0.0.0/", ""} {
		if _, err := tokens.NormalizeCIDRs([]string{bad}); err == nil {
			t.Errorf("NormalizeCIDRs(%q) took it", bad)
		}
	}
}

// featureFixture mints a token with scopes, an expiry and an allow-list on
// a cached service, as the hot-path benchmark's "features" run does.
func featureFixture(b testing.TB, limits tokens.Options) (*tokens.Service, tokens.Minted) {
	f := newFixture(b)
	c := newL1(b)
	usage := tokens.NewUsageRecorder(f.store, 0, nil)
	svc := tokens.New(tokens.Config{Store: f.store, Keyring: f.keys, Format: f.fmt, Cache: c, Usage: usage, Logger: quiet})
	m, err := svc.Mint(authn.WithPrincipal(context.Background(), f.owner), tokens.MintRequest{
		Name: "t", Scopes: []string{"read", "write"}, TTL: 90 * 24 * time.Hour, Options: limits,
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc, m
}

var benchCIDRs = []string{"10.0.0.0/8", "192.168.0.0/16"}

// BenchmarkValidateCachedFeatures is BenchmarkValidateCached on a token with
// scopes, an expiry and a CIDR allow-list, validated from inside it.
func BenchmarkValidateCachedFeatures(b *testing.B) {
	svc, m := featureFixture(b, tokens.Options{AllowedCIDRs: benchCIDRs})
	required, ip := []string{"read"}, netip.MustParseAddr("10.1.2.3")
	if r, err := svc.ValidateFrom(context.Background(), m.Secret, required, ip); err != nil || !r.Valid {
		b.Fatalf("%+v %v", r, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r, err := svc.ValidateFrom(context.Background(), m.Secret, required, ip); err != nil || !r.Valid {
				b.Errorf("%+v %v", r, err)
				return
			}
		}
	})
}

// BenchmarkServerValidate is the gRPC method (request in, message out,
// before the wire) on a plain token and on one with every cached feature.
func BenchmarkServerValidate(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits tokens.Options
		ip     string
	}{
		{"plain", tokens.Options{}, ""},
		{"scopes+expiry+allowlist", tokens.Options{AllowedCIDRs: benchCIDRs}, "10.1.2.3"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			svc, m := featureFixture(b, bc.limits)
			srv := tokens.NewServer(svc)
			req := &keymintv1.ValidateTokenRequest{Token: m.Secret, RequiredScopes: []string{"read"}, ClientIp: bc.ip}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := srv.ValidateToken(context.Background(), req)
					if err != nil || !r.Valid {
						b.Errorf("%v %v", r, err)
						return
					}
					_ = proto.Size(r)
				}
			})
		})
	}
}

// Allowed CIDRs are checked on the cached entry: an address outside (or
// none) is refused without reaching the store, and the answer says no_store.
func TestAllowListOnCachedEntry(t *testing.T) {
	t.Parallel()
	svc, m := featureFixture(t, tokens.Options{AllowedCIDRs: benchCIDRs})
	srv := tokens.NewServer(svc)
	for ip, valid := range map[string]bool{"10.9.9.9": true, "192.168.3.4": true, "172.16.0.1": false, "": false} {
		r, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: m.Secret, ClientIp: ip})
		if err != nil || r.Valid != valid || r.NoStore == valid {
			t.Fatalf("from %q: %v %v", ip, r, err)
		}
		if !valid && r.Reason != keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED {
			t.Fatalf("from %q: %v", ip, r.Reason)
		}
	}
	if _, err := srv.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: m.Secret, ClientIp: "bogus"}); err == nil {
		t.Fatal("a bad client_ip was taken")
	}
}

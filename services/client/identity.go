package client

import (
	"context"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// Identity is who a validated token belongs to.
type Identity struct {
	TokenID        string
	UserID         string
	OrganizationID string
	// Scopes are sorted.
	Scopes []string
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time
	// CreatedAt is when the token was minted (zero from a server that does
	// not say).
	CreatedAt time.Time
	// ExternalID and Metadata are what the token's creator attached to it.
	ExternalID string
	Metadata   *structpb.Struct
	// AllowedCIDRs, when set, are the only ranges the token may be used
	// from.
	AllowedCIDRs []netip.Prefix
	// RemainingUses, for a token with a usage limit, is how many uses were
	// left after this one; nil for unlimited.
	RemainingUses *int64
	// PrincipalKind is what the token acts for: a user or a service account
	// (UserID then names the service account). A server that does not say
	// answers PRINCIPAL_KIND_UNSPECIFIED.
	PrincipalKind keymintv1.PrincipalKind
}

// AllowsIP reports whether the token may be used from ip: always without
// allowed CIDRs, never from an unknown address with them.
func (id *Identity) AllowsIP(ip netip.Addr) bool {
	if len(id.AllowedCIDRs) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	for _, p := range id.AllowedCIDRs {
		if p.IsValid() && p.Contains(ip) {
			return true
		}
	}
	return false
}

// HasScopes reports whether the identity holds every scope in want.
func (id *Identity) HasScopes(want ...string) bool {
	for _, w := range want {
		if _, found := slices.BinarySearch(id.Scopes, w); !found {
			return false
		}
	}
	return true
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the middleware or interceptor put in ctx.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

package client

import (
	"context"
	"slices"
	"time"
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

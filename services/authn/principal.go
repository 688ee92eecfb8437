// Package authn says who is calling: the Principal a request authenticated
// as, the ways a caller proves it (credential kinds and the metadata keys
// that carry them), the admin scope and scope checks. It is the one
// definition of that wire contract, shared by the server (accounts, tokens),
// the gateway, the client library and the sidecar; it decides nothing about
// whether credentials are right (accounts and tokens do).
package authn

import "context"

// Method says how a caller proved who it is.
type Method int

// Ways a caller authenticates.
const (
	// ByPassword: x-api-email + x-api-password.
	ByPassword Method = iota + 1
	// ByToken: an API token in authorization.
	ByToken
	// BySession: a signed-in web session (x-keymint-session, which the
	// gateway fills from the session cookie).
	BySession
)

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID string
	OrgID  string
	Email  string
	Admin  bool
	// HeldScopes are the scopes the user may put in tokens (empty: every
	// scope of the organization), as read when the call authenticated.
	HeldScopes []string
	Method     Method
	// TokenID and Scopes are set when Method is ByToken.
	TokenID string
	Scopes  []string
	// SessionID is set when Method is BySession.
	SessionID string
	// Kind is what the caller is: a person, or (for a token) a service
	// account; empty is KindUser.
	Kind Kind
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller the request authenticated as, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

package authn

import "strings"

// Metadata keys a caller authenticates with, in the lower-case form gRPC
// metadata uses; through the gateway they are HTTP headers of the same names.
const (
	// HeaderAuthorization carries an API token: "Bearer TOKEN" or the raw
	// token (TokenFromAuthorization).
	HeaderAuthorization = "authorization"
	// HeaderEmail and HeaderPassword sign in with a password (ByPassword).
	HeaderEmail    = "x-api-email"
	HeaderPassword = "x-api-password"
	// HeaderSession carries a web-session secret. The gateway sets it from
	// the session cookie and never forwards it from an HTTP caller; a gRPC
	// caller holding a session secret may send it, like a token.
	HeaderSession = "x-keymint-session"
)

// bearerPrefix is the authorization scheme of RFC 6750, matched without
// regard to case.
const bearerPrefix = "Bearer "

// Bearer returns the authorization value that sends token.
func Bearer(token string) string { return bearerPrefix + token }

// TokenFromAuthorization returns the token in an authorization value, which
// is "Bearer TOKEN" (any case of "Bearer") or the raw token (the Upsolver
// form), with surrounding white space trimmed. A blank value gives ""; a
// value without the "Bearer " prefix (even "Bearer" alone) is taken as a raw
// token, which validation then refuses like any wrong one.
func TokenFromAuthorization(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > len(bearerPrefix) && strings.EqualFold(v[:len(bearerPrefix)], bearerPrefix) {
		return strings.TrimSpace(v[len(bearerPrefix):])
	}
	return v
}

package authn

import keymintv1 "github.com/keymint/keymint/proto/keymint/v1"

// Kind is what a principal, or a token, acts for. The names are the wire
// form (forward-auth and ext_authz headers, introspection, forward-auth's
// identity body) and the store's column values.
type Kind string

// Principal kinds.
const (
	// KindUser is a person who signs in.
	KindUser Kind = "user"
	// KindServiceAccount is an organization-owned machine identity: no
	// password, no sign-in; admins mint its tokens.
	KindServiceAccount Kind = "service_account"
)

// KindOf is the kind a validation answer names; a server that predates
// kinds (UNSPECIFIED) has only users.
func KindOf(k keymintv1.PrincipalKind) Kind {
	if k == keymintv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT {
		return KindServiceAccount
	}
	return KindUser
}

// Proto is k's API form.
func (k Kind) Proto() keymintv1.PrincipalKind {
	if k == KindServiceAccount {
		return keymintv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT
	}
	return keymintv1.PrincipalKind_PRINCIPAL_KIND_USER
}

package sidecar

import (
	"encoding/json"
	"strings"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
)

// identity is forward-auth's optional allow body: the RFC 7662 names for
// who the token belongs to, so a checker that reads a JSON subject (Ory
// Oathkeeper's bearer_token authenticator: subject_from "sub") needs no
// header mapping.
type identity struct {
	Sub   string `json:"sub"`
	Scope string `json:"scope"`
	// Exp is the expiry as a NumericDate; omitted for a token that never
	// expires.
	Exp int64  `json:"exp,omitempty"`
	Org string `json:"org"`
	// Kind is "user" or "service_account".
	Kind string `json:"kind"`
}

// identityBody is the JSON identity of a valid answer.
func identityBody(v *keymintv1.ValidateTokenResponse) []byte {
	id := identity{Sub: v.GetUserId(), Scope: strings.Join(v.GetScopes(), " "), Org: v.GetOrganizationId(),
		Kind: string(authn.KindOf(v.GetPrincipalKind()))}
	if t := v.GetExpireTime(); t != nil {
		id.Exp = t.GetSeconds()
	}
	b, _ := json.Marshal(id)
	return append(b, '\n')
}

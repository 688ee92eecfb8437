package sidecar

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/recent"
)

// Validator answers token validations: keymint's TokenService in process on
// the central server, or a caching client of it in the sidecar.
type Validator interface {
	ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error)
}

// Identity headers set for the upstream on allow. Any copy a client sent is
// overwritten or removed, never appended to.
const (
	HeaderTokenID    = "x-keymint-token-id"
	HeaderUserID     = "x-keymint-user-id"
	HeaderOrgID      = "x-keymint-org-id"
	HeaderScopes     = "x-keymint-scopes"
	HeaderExternalID = "x-keymint-external-id"
	// HeaderPrincipalKind is what the token acts for: "user" or
	// "service_account" (HeaderUserID then names the service account).
	HeaderPrincipalKind = "x-keymint-principal-kind"
)

// IdentityHeaders lists the identity header names.
var IdentityHeaders = []string{HeaderTokenID, HeaderUserID, HeaderOrgID, HeaderScopes, HeaderExternalID, HeaderPrincipalKind}

// Config configures both adapters.
type Config struct {
	Validator Validator
	Rules     *Rules
	// StripAuthorization removes the authorization header before the request
	// reaches the upstream (ext_authz only: forward-auth cannot edit the
	// original request).
	StripAuthorization bool
	// Clients finds forward-auth's client address: the proxy's connection,
	// then X-Forwarded-For as far as trusted proxies wrote it (nil trusts
	// none). A token with allowed CIDRs is checked against it. ext_authz
	// takes the downstream address Envoy reports instead (Envoy applies its
	// own trusted-hop rules).
	Clients *clientip.Resolver
	// Style picks which headers forward-auth believes for the original
	// request's method and URI (ext_authz has Envoy's own). The zero value
	// is StyleAuto.
	Style Style
	// IdentityBody makes forward-auth answer an allow with a small JSON
	// identity body (see identityBody), for checkers that read one (Ory
	// Oathkeeper's bearer_token authenticator wants "sub").
	IdentityBody bool
}

// decision is an allow or a deny with its HTTP status and body.
type decision struct {
	allow  bool
	status int
	// headers is an allow's identity headers, name and value: read-only,
	// shared by every allow of the same identity (identities).
	headers *[6][2]string
	body    []byte // JSON on deny
	// retryAfter is set on a 429: whole seconds, rounded up.
	retryAfter string
	// valid is the validation answer of an allow.
	valid *keymintv1.ValidateTokenResponse
}

var (
	bodyMissing      = denyBody("missing_token", "an API token is required")
	bodyInvalid      = denyBody("invalid_token", "the API token is not valid")
	bodyScope        = denyBody("insufficient_scope", "the API token lacks a scope this route needs")
	bodyUnavailable  = denyBody("unavailable", "authorization is unavailable, retry shortly")
	bodyRateLimited  = denyBody("rate_limited", "the API token's rate limit is spent; retry later")
	bodyIPNotAllowed = denyBody("ip_not_allowed", "the API token may not be used from this address")
	bodyBadPath      = denyBody("invalid_path", "the request path has control characters or is not UTF-8")
	bodyNoOriginal   = denyBody("invalid_forward_request", "the proxy did not say, unambiguously, which request to authorize")
)

// HeaderReason carries a deny's JSON body as a forward-auth response header
// too: nginx's auth_request drops the subrequest's body, and its error_page
// location returns this instead (deploy/compose/nginx.conf).
const HeaderReason = "X-Keymint-Reason"

func denyBody(code, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	return b
}

// wwwAuthenticate is the challenge sent with a 401 or 403 deny.
func wwwAuthenticate(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return `Bearer realm="keymint", error="invalid_token"`
	case http.StatusForbidden:
		return `Bearer realm="keymint", error="insufficient_scope"`
	}
	return ""
}

// decide validates the token for method + path. It fails closed: a
// validation error denies with 503, never allows.
// clientIP is the caller's address (empty when unknown); ids keeps the
// identity headers of the answers seen (identities).
func decide(ctx context.Context, cfg *Config, ids *identities, authorization, method, path, clientIP string) decision {
	scopes, err := cfg.Rules.Lookup(method, path)
	if err != nil {
		return decision{status: http.StatusBadRequest, body: bodyBadPath}
	}
	tok := authn.TokenFromAuthorization(authorization)
	if tok == "" {
		return decision{status: http.StatusUnauthorized, body: bodyMissing}
	}
	resp, err := cfg.Validator.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{
		Token:          tok,
		RequiredScopes: scopes,
		ClientIp:       clientIP,
	})
	if err != nil {
		return decision{status: http.StatusServiceUnavailable, body: bodyUnavailable}
	}
	if !resp.GetValid() {
		switch resp.GetReason() {
		case keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE:
			return decision{status: http.StatusForbidden, body: bodyScope}
		case keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED:
			return decision{status: http.StatusForbidden, body: bodyIPNotAllowed}
		case keymintv1.ValidateTokenResponse_RATE_LIMITED:
			secs := int64(math.Ceil(resp.GetRetryAfter().AsDuration().Seconds()))
			return decision{status: http.StatusTooManyRequests, body: bodyRateLimited,
				retryAfter: strconv.FormatInt(max(secs, 1), 10)}
		}
		return decision{status: http.StatusUnauthorized, body: bodyInvalid}
	}
	return decision{allow: true, status: http.StatusOK, valid: resp, headers: ids.of(resp)}
}

// identityHeaders is resp's identity headers, name and value.
func identityHeaders(resp *keymintv1.ValidateTokenResponse) [6][2]string {
	return [...][2]string{
		{HeaderTokenID, resp.GetTokenId()},
		{HeaderUserID, resp.GetUserId()},
		{HeaderOrgID, resp.GetOrganizationId()},
		{HeaderScopes, strings.Join(resp.GetScopes(), " ")},
		{HeaderExternalID, resp.GetExternalId()},
		{HeaderPrincipalKind, string(authn.KindOf(resp.GetPrincipalKind()))},
	}
}

// identities keeps the identity headers of recent valid answers, by token
// id, with the answer they came from. keymint's TokenService in process
// hands out the same read-only answer while a token's cache entry stands,
// so an answer seen before has its headers already: no scopes joined (an
// allocation) and, the strings being the same ones, ext_authz's comparison
// with its kept answer is by pointer. A validator answering new messages
// (the sidecar's client) gets the headers built as before, and kept only
// when they changed.
type identities struct {
	seed   maphash.Seed
	recent recent.Table[keptIdentity]
}

type keptIdentity struct {
	valid   *keymintv1.ValidateTokenResponse
	headers [6][2]string
}

func newIdentities() *identities { return &identities{seed: maphash.MakeSeed()} }

// of is resp's identity headers, kept: read-only.
func (t *identities) of(resp *keymintv1.ValidateTokenResponse) *[6][2]string {
	h := maphash.String(t.seed, resp.GetTokenId())
	kept := t.recent.Get(h, func(id *keptIdentity) bool { return id.valid.GetTokenId() == resp.GetTokenId() })
	if kept != nil && kept.valid == resp {
		return &kept.headers
	}
	hs := identityHeaders(resp)
	if kept != nil && kept.headers == hs {
		return &kept.headers
	}
	id := &keptIdentity{valid: resp, headers: hs}
	t.recent.Put(h, id, func(old *keptIdentity) bool { return old.valid.GetTokenId() == resp.GetTokenId() })
	return &id.headers
}

// Package introspect is RFC 7662 token introspection over keymint's
// validation: POST /oauth2/introspect for gateways that speak OAuth 2.0
// (Kong, APISIX, Gravitee, Ory Oathkeeper...), and the RFC 8414 metadata
// that names it. Every introspection is one ValidateToken call, so scopes,
// expiry, revocation, allowed CIDRs and usage and rate limits apply exactly
// as they do to any validation.
package introspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/clientip"
)

// Path is where introspection is served, on keymint's HTTP port and on the
// sidecar's.
const Path = "/oauth2/introspect"

// MetadataPath is RFC 8414's authorization server metadata.
const MetadataPath = "/.well-known/oauth-authorization-server"

// CallerScope is the scope a keymint token needs to call the endpoint
// (RFC 7662 §2.1: the caller must be authenticated).
const CallerScope = "keymint:introspect"

// MaxBodyBytes bounds an introspection request's form body: a token and a
// few short parameters fit in far less.
const MaxBodyBytes = 16 << 10

// Validator answers token validations: keymint's TokenService behind its
// interceptor chain on the central server, the caching client in the sidecar.
type Validator interface {
	ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error)
}

// ValidatorFunc adapts a function to Validator.
type ValidatorFunc func(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error)

// ValidateToken calls f.
func (f ValidatorFunc) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	return f(ctx, req)
}

// Config configures the handlers.
type Config struct {
	// Validator answers both the caller's credential check and the
	// introspected token. Required.
	Validator Validator
	// Issuer is the "iss" of active answers and the metadata's issuer: an
	// https (or, for a laptop, http) URL with no query or fragment.
	Issuer string
	// Clients finds the caller's address (for a caller token with allowed
	// CIDRs); nil trusts no proxy.
	Clients *clientip.Resolver
}

// Handler serves Path.
type Handler struct {
	cfg Config
}

// New returns the introspection handler.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// challenge is the WWW-Authenticate of a 401: both credential forms.
const challenge = `Basic realm="keymint", Bearer realm="keymint"`

// oauthError writes an RFC 6749 §5.2 style error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", challenge)
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	_, _ = w.Write(append(b, '\n'))
}

// callerToken is the keymint token authenticating the caller: the password
// of HTTP Basic (client_secret_basic: id and secret form-encoded, RFC 6749
// §2.3.1; the client id is free text, only the secret counts) or a Bearer
// token. ok is false when neither form is present or readable.
func callerToken(authorization string) (string, bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(authorization), " ")
	if !found {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest, rest != ""
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, secret, found := strings.Cut(string(raw), ":")
		if !found {
			return "", false
		}
		secret, err = url.QueryUnescape(secret)
		return secret, err == nil && secret != ""
	}
	return "", false
}

// active is an active token's answer: RFC 7662 §2.2's members, then
// keymint's own under keymint_ names (collision resistant, as §2.2 asks).
type active struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope"`
	ClientID  string `json:"client_id"`
	Username  string `json:"username"`
	TokenType string `json:"token_type"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub"`
	Iss       string `json:"iss,omitempty"`
	Jti       string `json:"jti"`
	// keymint's own.
	OrgID string `json:"keymint_org_id"`
	// PrincipalKind is "user" or "service_account" (sub names either).
	PrincipalKind string          `json:"keymint_principal_kind"`
	ExternalID    string          `json:"keymint_external_id,omitempty"`
	Metadata      json.RawMessage `json:"keymint_metadata,omitempty"`
	RemainingUses *int64          `json:"keymint_remaining_uses,omitempty"`
}

// inactive is the whole answer for any token that is not usable: RFC 7662
// §2.2 forbids saying why.
var inactive = []byte(`{"active":false}` + "\n")

// ServeHTTP authenticates the caller, then introspects the form's token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// §2.2: answers must not be cached; a cached "active" would outlive a
	// revocation.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	caller, ok := callerToken(r.Header.Get("Authorization"))
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication is required")
		return
	}
	ctx := r.Context()
	ip := h.cfg.Clients.FromHTTP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
	cr, err := h.cfg.Validator.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{
		Token: caller, RequiredScopes: []string{CallerScope}, ClientIp: clientip.String(ip),
	})
	if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "introspection is unavailable, retry shortly")
		return
	}
	if !cr.GetValid() {
		switch cr.GetReason() {
		case keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE:
			oauthError(w, http.StatusForbidden, "insufficient_scope", "the caller's token needs the "+CallerScope+" scope")
		case keymintv1.ValidateTokenResponse_RATE_LIMITED:
			secs := int64(math.Ceil(cr.GetRetryAfter().AsDuration().Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
			oauthError(w, http.StatusTooManyRequests, "rate_limited", "the caller's token rate limit is spent; retry later")
		default:
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		}
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusUnsupportedMediaType, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			oauthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "the body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a valid form")
		return
	}
	form := r.PostForm
	token := form.Get("token")
	if token == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	// token_type_hint is advisory (§2.1): keymint has one kind of token.
	// scope (as Oathkeeper sends it) is checked like requiredScopes: a
	// token lacking one is inactive for this caller.
	// client_ip (keymint's own parameter) is the address the token came
	// from, for a token with allowed CIDRs; without it such a token is
	// inactive.
	req := &keymintv1.ValidateTokenRequest{Token: token, RequiredScopes: strings.Fields(form.Get("scope")),
		ClientIp: form.Get("client_ip")}
	if req.ClientIp != "" {
		if _, err := netip.ParseAddr(req.ClientIp); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_ip is not an IP address")
			return
		}
	}
	resp, err := h.cfg.Validator.ValidateToken(ctx, req)
	if err != nil {
		// keymint unable to decide, never "inactive".
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "introspection is unavailable, retry shortly")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !resp.GetValid() {
		_, _ = w.Write(inactive)
		return
	}
	a := active{
		Active:        true,
		Scope:         strings.Join(resp.GetScopes(), " "),
		ClientID:      resp.GetTokenId(),
		Username:      resp.GetUserId(),
		TokenType:     "Bearer",
		Sub:           resp.GetUserId(),
		Iss:           h.cfg.Issuer,
		Jti:           resp.GetTokenId(),
		OrgID:         resp.GetOrganizationId(),
		PrincipalKind: string(authn.KindOf(resp.GetPrincipalKind())),
		ExternalID:    resp.GetExternalId(),
		RemainingUses: resp.RemainingUses,
	}
	if t := resp.GetExpireTime(); t != nil {
		a.Exp = t.GetSeconds()
	}
	if t := resp.GetCreateTime(); t != nil {
		a.Iat = t.GetSeconds()
	}
	if m := resp.GetMetadata(); m != nil {
		if b, err := protojson.Marshal(m); err == nil {
			a.Metadata = b
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// metadata is RFC 8414 §2's document, the members keymint has.
type metadata struct {
	Issuer                string   `json:"issuer"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	IntrospectionAuth     []string `json:"introspection_endpoint_auth_methods_supported"`
	// keymint issues no tokens through OAuth flows: no authorization or
	// token endpoint, so no response types (the member is REQUIRED).
	ResponseTypes []string `json:"response_types_supported"`
	GrantTypes    []string `json:"grant_types_supported"`
}

// Metadata serves MetadataPath for cfg.
func Metadata(cfg Config) http.Handler {
	body, _ := json.Marshal(metadata{
		Issuer:                cfg.Issuer,
		IntrospectionEndpoint: strings.TrimRight(cfg.Issuer, "/") + Path,
		// client_secret_basic: the secret is a keymint token with
		// CallerScope. A Bearer token works too, but RFC 8414 has no
		// registered name for it.
		IntrospectionAuth: []string{"client_secret_basic"},
		ResponseTypes:     []string{},
		GrantTypes:        []string{},
	})
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(body)
	})
}

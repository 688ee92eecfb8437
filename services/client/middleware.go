package client

import (
	"net/http"
	"strings"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Fixed deny bodies: they tell a client what to fix, nothing that helps an
// attacker tell a revoked token from an unknown one.
const (
	bodyUnauthorized = `{"error":"unauthorized","message":"a valid API token is required"}`
	bodyForbidden    = `{"error":"forbidden","message":"the API token lacks a required scope"}`
	bodyUnavailable  = `{"error":"unavailable","message":"authorization is unavailable, retry shortly"}`
)

// TokenFromAuthorization returns the token in an Authorization value:
// "Bearer TOKEN" or the raw token.
func TokenFromAuthorization(v string) string {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return strings.TrimSpace(v)
}

// Middleware returns net/http middleware that lets a request through only
// with a valid token holding every scope given, and puts its Identity in the
// request context (IdentityFrom). It answers 401, 403, or 503 when keymint
// cannot be asked.
func (v *Validator) Middleware(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, err := v.Validate(r.Context(), TokenFromAuthorization(r.Header.Get("Authorization")), scopes...)
			switch {
			case err != nil:
				deny(w, http.StatusServiceUnavailable, bodyUnavailable)
			case res.Valid:
				next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), res.Identity)))
			case res.Reason == keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE:
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				deny(w, http.StatusForbidden, bodyForbidden)
			default:
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				deny(w, http.StatusUnauthorized, bodyUnauthorized)
			}
		})
	}
}

func deny(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

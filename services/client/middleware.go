package client

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
)

// Fixed deny bodies: they tell a client what to fix, nothing that helps an
// attacker tell a revoked token from an unknown one.
const (
	bodyUnauthorized = `{"error":"unauthorized","message":"a valid API token is required"}`
	bodyForbidden    = `{"error":"forbidden","message":"the API token lacks a required scope"}`
	bodyUnavailable  = `{"error":"unavailable","message":"authorization is unavailable, retry shortly"}`
	bodyIPNotAllowed = `{"error":"forbidden","message":"the API token may not be used from this address"}`
	bodyRateLimited  = `{"error":"rate_limited","message":"the API token's rate limit is spent; retry later"}`
)

// clientIP is the address a request came from: ValidatorConfig.ClientIP's
// answer, or the connection's address.
func (v *Validator) clientIP(r *http.Request) netip.Addr {
	if v.cfg.ClientIP != nil {
		return v.cfg.ClientIP(r)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// Middleware returns net/http middleware that lets a request through only
// with a valid token holding every scope given, and puts its Identity in the
// request context (IdentityFrom). It answers 401, 403, or 503 when keymint
// cannot be asked.
func (v *Validator) Middleware(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, err := v.ValidateFrom(r.Context(), authn.TokenFromAuthorization(r.Header.Get(authn.HeaderAuthorization)), v.clientIP(r), scopes...)
			switch {
			case err != nil:
				deny(w, http.StatusServiceUnavailable, bodyUnavailable)
			case res.Valid:
				next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), res.Identity)))
			case res.Reason == keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE:
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				deny(w, http.StatusForbidden, bodyForbidden)
			case res.Reason == keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED:
				deny(w, http.StatusForbidden, bodyIPNotAllowed)
			case res.Reason == keymintv1.ValidateTokenResponse_RATE_LIMITED:
				w.Header().Set("Retry-After", strconv.FormatInt(max(int64(math.Ceil(res.RetryAfter.Seconds())), 1), 10))
				deny(w, http.StatusTooManyRequests, bodyRateLimited)
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

package client

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// storeAnswers caches one answer per case for the middleware and
// interceptor tests (keymint itself is unreachable: newOffline).
func storeAnswers(v *Validator) {
	until := time.Now().Add(time.Hour)
	v.store(keyOf("km_good"), &entry{valid: true, until: until, identity: &Identity{TokenID: "g", UserID: "u-good",
		Scopes: []string{"reports:read"}}})
	v.store(keyOf("km_cidr"), &entry{valid: true, until: until, identity: &Identity{TokenID: "c", UserID: "u-cidr",
		Scopes: []string{"reports:read"}, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	v.store(keyOf("km_noscope"), &entry{valid: true, until: until, identity: &Identity{TokenID: "n"}})
	v.store(keyOf("km_limited"), &entry{reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, until: until,
		retryAfter: 1200 * time.Millisecond})
	v.store(keyOf("km_limited_now"), &entry{reason: keymintv1.ValidateTokenResponse_RATE_LIMITED, until: until})
	v.store(keyOf("km_revoked"), &entry{reason: keymintv1.ValidateTokenResponse_REVOKED, until: until})
}

// The middleware's answer for each case: status, the headers a client acts
// on, and the identity handed on. Mutations it fails on: clientIP's
// `v.cfg.ClientIP != nil` negated (nil called, or the configured one
// ignored) and `err != nil` negated (the connection's address lost: an
// allow-listed token refused).
func TestMiddlewareAnswers(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	storeAnswers(v)
	handler := v.Middleware("reports:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := IdentityFrom(r.Context())
		if !ok {
			t.Error("no identity in context")
			return
		}
		w.Header().Set("X-User", id.UserID)
	}))
	for _, c := range []struct {
		token, remote string
		code          int
		header, value string
	}{
		{"", "10.1.1.1:5000", 401, "WWW-Authenticate", `Bearer error="invalid_token"`},
		{"km_good", "192.0.2.1:5000", 200, "X-User", "u-good"},
		{"km_cidr", "10.1.1.1:5000", 200, "X-User", "u-cidr"},
		{"km_cidr", "192.0.2.1:5000", 403, "Cache-Control", "no-store"},
		{"km_cidr", "not an address", 403, "Content-Type", "application/json"},
		{"km_noscope", "10.1.1.1:5000", 403, "WWW-Authenticate", `Bearer error="insufficient_scope"`},
		{"km_limited", "10.1.1.1:5000", 429, "Retry-After", "2"},
		{"km_limited_now", "10.1.1.1:5000", 429, "Retry-After", "1"},
		{"km_revoked", "10.1.1.1:5000", 401, "WWW-Authenticate", `Bearer error="invalid_token"`},
		{"km_unknown", "10.1.1.1:5000", 503, "Cache-Control", "no-store"},
	} {
		r := httptest.NewRequest("GET", "/reports", nil)
		r.RemoteAddr = c.remote
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code != c.code || w.Header().Get(c.header) != c.value {
			t.Errorf("%s from %s: %d %s=%q, want %d %q", c.token, c.remote, w.Code, c.header, w.Header().Get(c.header), c.code, c.value)
		}
	}
}

// ValidatorConfig.ClientIP, when set, is the address checked (behind a
// proxy), not the connection's.
func TestMiddlewareConfiguredClientIP(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	v.cfg.ClientIP = func(r *http.Request) netip.Addr { return netip.MustParseAddr(r.Header.Get("X-Forwarded-For")) }
	storeAnswers(v)
	handler := v.Middleware()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, c := range []struct {
		forwarded string
		code      int
	}{{"10.2.2.2", 200}, {"192.0.2.1", 403}} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.9:1234" // the proxy's: outside the allow-list
		r.Header.Set("X-Forwarded-For", c.forwarded)
		r.Header.Set("Authorization", "Bearer km_cidr")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("forwarded for %s: %d, want %d", c.forwarded, w.Code, c.code)
		}
	}
}

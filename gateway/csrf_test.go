package gateway

import (
	"net/http/httptest"
	"testing"
)

// TestCSRFProofs holds checkSameOrigin to the README's CSRF rule: a
// state-changing request a cookie authenticates needs Content-Type:
// application/json, X-Keymint-CSRF or X-Requested-With (a plain form can
// send none of them), and must not come from another site by its Origin or
// Sec-Fetch-Site; GET, HEAD and OPTIONS pass. TestSemaphoreCSRF proves the
// same through a running keymint; this one is the fast guard.
//
// Mutations: gateway/csrf.go checkSameOrigin drops X-Requested-With,
// `|| r.Header.Get("X-Requested-With") != ""` removed; or accepts any
// Sec-Fetch-Site, `case "", "same-origin", "none":` → `default:` first.
func TestCSRFProofs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, method string
		header       map[string]string
		allowed      bool
	}{
		{"GET needs nothing", "GET", nil, true},
		{"HEAD needs nothing", "HEAD", nil, true},
		{"OPTIONS needs nothing", "OPTIONS", nil, true},
		{"POST with no proof", "POST", nil, false},
		{"POST as a form", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, false},
		{"POST as text/plain", "POST", map[string]string{"Content-Type": "text/plain"}, false},
		{"POST with JSON", "POST", map[string]string{"Content-Type": "application/json"}, true},
		{"POST with JSON and a charset", "POST", map[string]string{"Content-Type": "application/json; charset=utf-8"}, true},
		{"DELETE with X-Keymint-CSRF", "DELETE", map[string]string{"X-Keymint-CSRF": "1"}, true},
		{"DELETE with X-Requested-With", "DELETE", map[string]string{"X-Requested-With": "XMLHttpRequest"}, true},
		{"PATCH with X-Requested-With", "PATCH", map[string]string{"X-Requested-With": "XMLHttpRequest"}, true},
		{"PUT with X-Requested-With", "PUT", map[string]string{"X-Requested-With": "x"}, true},
		{"X-Requested-With from another site", "DELETE", map[string]string{"X-Requested-With": "XMLHttpRequest", "Sec-Fetch-Site": "cross-site"}, false},
		{"JSON from a sibling site", "POST", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, false},
		{"JSON typed by the user", "POST", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "none"}, true},
		{"JSON from this origin", "POST", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Origin": "http://keymint.example"}, true},
		{"X-Requested-With from a foreign Origin", "POST", map[string]string{"X-Requested-With": "XMLHttpRequest", "Origin": "http://evil.example"}, false},
		{"JSON from an Origin without a host", "POST", map[string]string{"Content-Type": "application/json", "Origin": "null"}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://keymint.example/api/user/tokens", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		err := checkSameOrigin(r)
		if (err == nil) != c.allowed {
			t.Errorf("%s: allowed %v, want %v (%v)", c.name, err == nil, c.allowed, err)
		}
	}
}

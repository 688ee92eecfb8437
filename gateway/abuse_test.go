package gateway

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/clientip"
)

// The server's retry hint becomes Retry-After (whole seconds, rounded up)
// on the 429 of a throttled sign-in and the 503 of a store outage; the
// server's own message for the 503 comes through, a transport failure's
// does not (TestUnreachableServerIs503WithoutTransportText).
func TestRetryAfterFromServerHint(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := http.Header{"Authorization": {testToken}}
	for _, tc := range []struct {
		id, retryAfter string
		httpStatus     int
		code           int
		msg            string
	}{
		{"throttled", "21", http.StatusTooManyRequests, 8, "too many sign-in attempts; retry later"},
		{"storedown", "1", http.StatusServiceUnavailable, 14, "store unavailable, retry shortly"},
	} {
		for _, path := range []string{"/v1/tokens/" + tc.id, "/api-tokens/" + tc.id} {
			resp, body := doRequest(t, http.MethodGet, g.url+path, "", h, 0)
			sb := wantStatusJSON(t, resp, body, tc.httpStatus, tc.code)
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("GET %s: Retry-After = %q, want %q", path, got, tc.retryAfter)
			}
			if sb.Message != tc.msg {
				t.Errorf("GET %s: message %q, want %q", path, sb.Message, tc.msg)
			}
		}
	}
	// Statuses without a hint carry no header.
	resp, _ := doRequest(t, http.MethodGet, g.url+"/v1/tokens/missing", "", h, 0)
	if v := resp.Header.Get("Retry-After"); v != "" {
		t.Errorf("404 with Retry-After %q", v)
	}
}

// logLines decodes the gateway's JSON log lines named msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	if strings.TrimSpace(logs) == "" {
		return nil
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// The HTTP access log names the route pattern, never the path or query, and
// no header value or body.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	const secretish = "km_revokedbysecretvalue0123456789"
	h := http.Header{
		"Authorization":  {testToken},
		"X-Api-Password": {testPassword},
		"Cookie":         {"keymint_session=cookiesecretvalue"},
		"User-Agent":     {"agent-with-" + secretish},
	}
	reqs := []struct{ method, path, body, route string }{
		{"GET", "/v1/tokens/tok-1", "", "GET /v1/tokens/{id=*}"},
		{"GET", "/v1/tokens?pageToken=" + secretish, "", "GET /v1/tokens"},
		// An unknown parameter is refused before routing; its value is not logged.
		{"GET", "/v1/tokens/tok-1?x=" + secretish, "", ""},
		{"DELETE", "/api/user/tokens/" + secretish, "", "/api/user/tokens/{id}"},
		{"POST", "/api-tokens", `{"displayData":{"name":"` + secretish + `"}}`, "/api-tokens"},
		{"GET", "/nowhere/" + secretish, "", "unmatched"},
		{"POST", "/v1/tokens:validate", `{"token":"` + secretish + `"}`, ""},
	}
	for _, r := range reqs {
		doRequest(t, r.method, g.url+r.path, r.body, h, 0)
	}
	logs := g.logs.String()
	for _, bad := range []string{secretish, testToken, testPassword, "cookiesecretvalue"} {
		if strings.Contains(logs, bad) {
			t.Errorf("logs contain %q:\n%s", bad, logs)
		}
	}
	lines := logLines(t, logs, "http")
	var routes []string
	for _, l := range lines {
		routes = append(routes, l["route"].(string))
		if l["client_ip"] != "127.0.0.1" || l["status"] == nil || l["duration"] == nil {
			t.Errorf("access log line %v", l)
		}
	}
	for _, r := range reqs {
		if r.route != "" && !slices.Contains(routes, r.route) {
			t.Errorf("no access log line for route %q; got %q", r.route, routes)
		}
	}
}

// With the loopback proxy trusted, the gateway names the right-most
// untrusted X-Forwarded-For address as the client to the gRPC server, on
// generated and hand-written routes alike.
func TestClientIPBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, func(c *Config) {
		c.Clients = clientip.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	})
	h := http.Header{
		"Authorization":   {testToken},
		"X-Forwarded-For": {"198.51.100.66, 203.0.113.9"},
		"User-Agent":      {"curl/8.5.0"},
	}
	for _, path := range []string{"/v1/tokens/tok-1", "/api-tokens/tok-1"} {
		doRequest(t, http.MethodGet, g.url+path, "", h, 0)
		md := g.fake.lastCall(t).md
		if got := md.Get(clientip.MetadataIP); !slices.Equal(got, []string{"203.0.113.9"}) {
			t.Errorf("GET %s: client ip %q, want 203.0.113.9", path, got)
		}
		if got := md.Get(clientip.MetadataUserAgent); !slices.Equal(got, []string{"curl/8.5.0"}) {
			t.Errorf("GET %s: user agent %q", path, got)
		}
	}
	for _, l := range logLines(t, g.logs.String(), "http") {
		if l["client_ip"] != "203.0.113.9" {
			t.Errorf("access log client_ip = %v", l["client_ip"])
		}
	}
}

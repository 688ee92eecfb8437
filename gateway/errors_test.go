package gateway

import (
	"encoding/json"
	"maps"
	"net/http"
	"testing"
)

// A 5xx (something broke) is logged server-side at error level with the
// route's pattern, never the path; a caller's mistake (a 4xx) is not.
// Kills errors.go:48:16 `>=` → `>` (a 500 not logged) and negated (4xx
// logged, 5xx not), and errors.go:201:15 negated (a hand-written route's
// failure logged as "unmatched"), on 7eede42.
func TestServerFailuresLoggedAtError(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := http.Header{"Authorization": {testToken}}
	for _, tc := range []struct {
		path   string
		status int
		route  string // "" when no line is due
	}{
		{"/v1/tokens/broken", http.StatusInternalServerError, "/v1/tokens/{id}"},
		{"/api-tokens/broken", http.StatusInternalServerError, "/api-tokens/{id}"},
		{"/v1/tokens/storedown", http.StatusServiceUnavailable, "/v1/tokens/{id}"},
		{"/v1/tokens/missing", http.StatusNotFound, ""},
		{"/v1/tokens/throttled", http.StatusTooManyRequests, ""},
		{"/nowhere", http.StatusNotFound, ""},
	} {
		before := len(logLines(t, g.logs.String(), "request failed"))
		resp, body := doRequest(t, http.MethodGet, g.url+tc.path, "", h, 0)
		if resp.StatusCode != tc.status {
			t.Fatalf("GET %s = %d %s, want %d", tc.path, resp.StatusCode, body, tc.status)
		}
		lines := logLines(t, g.logs.String(), "request failed")[before:]
		if tc.route == "" {
			if len(lines) != 0 {
				t.Errorf("GET %s (%d) logged %v", tc.path, tc.status, lines)
			}
			continue
		}
		if len(lines) != 1 {
			t.Fatalf("GET %s (%d): %d \"request failed\" lines, want 1", tc.path, tc.status, len(lines))
		}
		if l := lines[0]; l["level"] != "ERROR" || l["route"] != tc.route || l["method"] != http.MethodGet {
			t.Errorf("GET %s (%d) logged %v, want level ERROR, route %s", tc.path, tc.status, l, tc.route)
		}
	}
}

// A status whose code is the caller's business keeps the server's details
// in the REST body: a throttled call's or a store outage's RetryInfo is
// there as over gRPC, besides the Retry-After header. Kills errors.go:86:9
// negated (every body marshalled again without its details), on 7eede42.
func TestErrorBodyKeepsServerDetails(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := http.Header{"Authorization": {testToken}}
	for id, delay := range map[string]string{"throttled": "20.100s", "storedown": "1s"} {
		for _, path := range []string{"/v1/tokens/" + id, "/api-tokens/" + id} {
			resp, body := doRequest(t, http.MethodGet, g.url+path, "", h, 0)
			var sb struct {
				Details []map[string]any `json:"details"`
			}
			if err := json.Unmarshal(body, &sb); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, body)
			}
			want := map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
			if len(sb.Details) != 1 || !maps.Equal(sb.Details[0], want) {
				t.Errorf("GET %s (%d): details %v, want [%v]", path, resp.StatusCode, sb.Details, want)
			}
		}
	}
}

package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// What machines poll (the probes, /metrics) and the validation route are
// logged at debug level when they succeed, so a busy service's info log is
// not one line per probe or check; their failures and every other request
// are logged at info. Kills accesslog.go:135:50 negated (`sw.status >= 300`,
// on 7eede42: the successes at info, the failures at debug).
func TestAccessLogLevels(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, func(c *Config) {
		c.Ready = func(context.Context) error { return errors.New("down") }
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up 1\n")) })
	})
	h := http.Header{"Authorization": {testToken}}
	for _, tc := range []struct {
		method, path, body string
		status             int
		level              string
	}{
		{http.MethodGet, "/healthz", "", http.StatusOK, "DEBUG"},
		{http.MethodGet, "/metrics", "", http.StatusOK, "DEBUG"},
		{http.MethodPost, "/v1/tokens:validate", `{"token":"km_x"}`, http.StatusOK, "DEBUG"},
		{http.MethodGet, "/readyz", "", http.StatusServiceUnavailable, "INFO"},
		{http.MethodPost, "/healthz", "", http.StatusMethodNotAllowed, "INFO"},
		{http.MethodGet, "/v1/tokens/tok-1", "", http.StatusOK, "INFO"},
	} {
		before := len(logLines(t, g.logs.String(), "http"))
		// Served in process: the line is written after the answer, so over
		// a connection the client could see the answer before the line.
		req := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, strings.NewReader(tc.body))
		req.Header = h.Clone()
		rec := httptest.NewRecorder()
		g.h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
		}
		lines := logLines(t, g.logs.String(), "http")
		if len(lines) != before+1 {
			t.Fatalf("%s %s: %d access log lines, want 1", tc.method, tc.path, len(lines)-before)
		}
		if got := lines[before]["level"]; got != tc.level {
			t.Errorf("%s %s (%d) logged at %v, want %s", tc.method, tc.path, tc.status, got, tc.level)
		}
	}
}

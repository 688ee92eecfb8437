package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPI: the generated OpenAPI document and the page rendering it are
// served, and the document covers the native routes.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t))
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct{ Title, Version string }
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code, body := do(t, "GET", srv.http+"/openapi.json", nil, "", &doc); code != 200 || doc.OpenAPI != "3.1.0" {
		t.Fatalf("/openapi.json = %d %.200s", code, body)
	}
	if doc.Info.Title != "keymint API" || doc.Info.Version != "1.0.0" {
		t.Errorf("info = %+v", doc.Info)
	}
	for path, verb := range map[string]string{
		"/v1/tokens":            "post",
		"/v1/tokens:validate":   "post",
		"/v1/tokens/{id}":       "get",
		"/v1/tokens:revoke":     "post",
		"/v1/user/password":     "put",
		"/api-tokens":           "post",
		"/api-tokens/{id}":      "delete",
		"/api/auth/login":       "get",
		"/api/auth/logout":      "post",
		"/api/user":             "get",
		"/api/user/tokens":      "get",
		"/api/user/tokens/{id}": "delete",
		"/api/ping":             "get",
		"/api/info":             "get",
		"/v1/forward-auth":      "get",
		"/healthz":              "get",
		"/readyz":               "get",
		"/metrics":              "get",
		"/openapi.json":         "get",
	} {
		if _, ok := doc.Paths[path][verb]; !ok {
			t.Errorf("OpenAPI document lacks %s %s", verb, path)
		}
	}
	resp, err := http.Get(srv.http + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("/docs = %d %v", resp.StatusCode, resp.Header)
	}
}

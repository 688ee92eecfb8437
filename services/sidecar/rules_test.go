package sidecar

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRulesMatch(t *testing.T) {
	t.Parallel()
	rs, err := NewRules([]Rule{
		{Method: "GET", PathPrefix: "/reports", Scopes: []string{"reports:read"}},
		{Method: "*", PathPrefix: "/reports", Scopes: []string{"reports:write"}},
		{PathPrefix: "/admin", Scopes: []string{"admin"}},
		{PathPrefix: "/admin/public"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		want         []string
	}{
		{"GET", "/reports", []string{"reports:read"}},
		{"get", "/reports/2024?x=1", []string{"reports:read"}},
		{"POST", "/reports/2024", []string{"reports:write"}},
		{"GET", "/reportsX", nil},
		{"GET", "/", nil},
		{"GET", "/admin/users", []string{"admin"}},
		{"GET", "/admin/public/logo.png", nil},
		// Attempts to dodge a rule by spelling the path differently.
		{"GET", "/x/../reports", []string{"reports:read"}},
		{"GET", "//reports", []string{"reports:read"}},
		{"GET", "/%72eports", []string{"reports:read"}},
		{"GET", "/admin/./users", []string{"admin"}},
		{"GET", "/admin/public/../secret", []string{"admin"}},
		{"GET", "reports", []string{"reports:read"}},
	}
	for _, c := range cases {
		if got := rs.Scopes(c.method, c.path); !slices.Equal(got, c.want) {
			t.Errorf("Scopes(%s %s) = %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

func TestParseRuleAndLoadRules(t *testing.T) {
	t.Parallel()
	r, err := ParseRule("GET /reports=reports:read, reports:list")
	if err != nil || r.Method != "GET" || r.PathPrefix != "/reports" || !slices.Equal(r.Scopes, []string{"reports:read", "reports:list"}) {
		t.Fatalf("ParseRule = %+v, %v", r, err)
	}
	if _, err := ParseRule("GET /a /b=x"); err == nil {
		t.Fatal("ParseRule accepted three fields")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "routes.yaml")
	os.WriteFile(good, []byte("routes:\n  - method: GET\n    path: /reports\n    scopes: [reports:read]\n"), 0o600)
	rs, err := LoadRules(good)
	if err != nil || !slices.Equal(rs.Scopes("GET", "/reports/1"), []string{"reports:read"}) {
		t.Fatalf("LoadRules: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - method: GET\n    pathh: /reports\n"), 0o600)
	if _, err := LoadRules(bad); err == nil {
		t.Fatal("LoadRules accepted an unknown field")
	}
	os.WriteFile(bad, []byte("routes:\n  - path: reports\n"), 0o600)
	if _, err := LoadRules(bad); err == nil {
		t.Fatal("LoadRules accepted a relative path")
	}
}

// FuzzRulesScopes: matching never panics, and a path that cleans to a
// protected prefix always gets that prefix's scopes.
func FuzzRulesScopes(f *testing.F) {
	rs, _ := NewRules([]Rule{{PathPrefix: "/reports", Scopes: []string{"reports:read"}}})
	for _, s := range []string{"/reports", "/a/../reports", "/%2e%2e/reports", "//reports/x", "/reportsx", "?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := rs.Scopes("GET", p)
		c := cleanPath(p)
		protected := c == "/reports" || len(c) > len("/reports/") && c[:len("/reports/")] == "/reports/"
		if protected != (len(got) == 1) {
			t.Fatalf("path %q (clean %q): scopes %v", p, c, got)
		}
	})
}

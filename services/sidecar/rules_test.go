package sidecar

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// FuzzRulesScopes: matching never panics, and a path whose segments, once
// unescaped and resolved, start with "reports" always gets /reports's
// scopes. The expectation walks the segments itself (a reference model),
// not through the code's own cleanPath.
//
// Mutation: services/sidecar/rules.go cleanPath skips the unescape (the
// seed "/%2e%2e/reports" then escapes the rule), or drops path.Clean.
func FuzzRulesScopes(f *testing.F) {
	rs, err := NewRules([]Rule{{PathPrefix: "/reports", Scopes: []string{"reports:read"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/reports", "/a/../reports", "/%2e%2e/reports", "//reports/x", "/reportsx", "?", "/x/%2e%2e/reports/./y", "/reports%2fz", "/./reports#x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := rs.Scopes("GET", p)
		protected := referenceSegments(p)
		if protected != (len(got) == 1) {
			t.Fatalf("path %q: scopes %v, protected %v", p, got, protected)
		}
	})
}

// referenceSegments says whether raw names /reports or below: the query and
// fragment cut, percent escapes decoded, then "", "." and ".." segments
// resolved one by one (".." above the root stays at the root).
func referenceSegments(raw string) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] == '?' || raw[i] == '#' {
			raw = raw[:i]
			break
		}
	}
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	var segs []string
	for _, s := range strings.Split(raw, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	return len(segs) > 0 && segs[0] == "reports"
}

package sidecar

import (
	"errors"
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
		{PathPrefix: "/données", Scopes: []string{"data"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	read, write, admin := []string{"reports:read"}, []string{"reports:write"}, []string{"admin"}
	cases := []struct {
		method, path string
		want         []string
	}{
		{"GET", "/reports", read},
		{"get", "/reports/2024?x=1", read},
		{"POST", "/reports/2024", write},
		{"GET", "/reportsX", nil},
		{"GET", "/", nil},
		{"GET", "", nil},
		{"GET", "/admin/users", admin},
		{"GET", "/admin/public/logo.png", nil},
		// A GET rule covers HEAD: servers run the GET handler for it.
		{"HEAD", "/reports", read},
		{"head", "/reports/1", read},
		{"OPTIONS", "/reports", write},
		// Attempts to dodge a rule by spelling the path differently.
		{"GET", "/x/../reports", read},
		{"GET", "//reports", read},
		{"GET", "/%72eports", read},
		{"GET", "/%2572eports", read},     // double-encoded
		{"GET", "/%25%37%32eports", read}, // double-encoded, each byte
		{"GET", "/%25252572eports", read}, // four times over
		{"GET", "/admin/./users", admin},
		{"GET", "/admin/public/../secret", admin},
		{"GET", "/admin/public/%2e%2e/secret", admin},
		{"GET", "/admin/public/%2E%2E%2Fsecret", admin},
		{"GET", "reports", read},
		{"GET", "/reports/", read},  // trailing slash
		{"GET", "/reports.", read},  // trailing dot
		{"GET", "/reports./", read}, // trailing dot and slash
		{"GET", "/reports.json", read},
		{"GET", "/reports.json/1", read},
		{"GET", "/reports;jsessionid=1", read},
		{"GET", "/reports;/1", read},
		{"GET", "/reports;a=b/x;c", read},
		{"GET", "/reports%3bjsessionid=1", read},
		{"GET", "/x;/../reports", read},
		{"GET", "/reports\\1", read},
		{"GET", "\\reports", read},
		{"GET", "/reports#frag", read},
		{"GET", "/reports%23frag", nil}, // an encoded # is part of the segment: reports#frag
		{"GET", "/reports%zz", nil},     // an invalid escape stays as it is: one segment
		{"GET", "/reports/%zz", read},
		{"GET", "http://example.com/reports", read}, // absolute form
		{"GET", "https://example.com:8443/reports/1?x", read},
		{"GET", "HTTP://example.com", nil},
		{"GET", "http://example.com?/reports", nil},
		{"GET", "/reports/http://x", read},
		// Case matters unless the rules ignore it.
		{"GET", "/REPORTS", nil},
		{"GET", "/Reports/1", nil},
		// Unicode: paths are compared as UTF-8, without normalisation.
		{"GET", "/données/1", []string{"data"}},
		{"GET", "/donn%C3%A9es", []string{"data"}},
		{"GET", "/reports/ü", read},
		{"GET", "/rеports", nil}, // Cyrillic е: another path for the upstream too
	}
	for _, c := range cases {
		got, err := rs.Lookup(c.method, c.path)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Lookup(%s %q) = %v, %v; want %v", c.method, c.path, got, err, c.want)
		}
	}

	ci, err := rs.IgnoringCase()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         []string
	}{
		{"GET", "/REPORTS", read},
		{"GET", "/Reports;x/1", read},
		{"HEAD", "/rEpOrTs.JSON", read},
		{"POST", "/ADMIN/Public/../x", admin},
		{"GET", "/ADMIN/PUBLIC/logo", nil},
		{"GET", "/DONNÉES", []string{"data"}},
		{"GET", "/reportsX", nil},
	} {
		if got, err := ci.Lookup(c.method, c.path); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ignoring case: Lookup(%s %q) = %v, %v; want %v", c.method, c.path, got, err, c.want)
		}
	}
	if got, _ := rs.Lookup("GET", "/REPORTS"); got != nil {
		t.Error("IgnoringCase changed the original rules")
	}

	// Refused outright: upstreams disagree on what these are.
	for _, p := range []string{
		"/reports%00", "/reports%00.json", "/%00/reports", "/reports\x00", "/reports%0a", "/reports%0d%0a",
		"/reports%7f", "/reports%c2%85", // DEL and NEL
		"/%c0%afreports", "/reports%c0%ae%c0%ae/admin", "/%e0%80%afreports", // overlong / and .
		"/reports%ff", "/%2500reports", // invalid UTF-8; double-encoded NUL
		"/%252525252572eports", // encoded five times over
	} {
		if got, err := rs.Lookup("GET", p); !errors.Is(err, ErrBadPath) {
			t.Errorf("Lookup(GET %q) = %v, %v; want ErrBadPath", p, got, err)
		}
		if got := rs.Scopes("GET", p); got != nil {
			t.Errorf("Scopes(GET %q) = %v, want nil", p, got)
		}
	}
	if _, err := NewRules([]Rule{{PathPrefix: "/a%00"}}); err == nil {
		t.Error("NewRules accepted a prefix with NUL")
	}
	// An explicit HEAD rule beats the GET rule for the same prefix, in
	// either order.
	for _, order := range [][]Rule{
		{{Method: "GET", PathPrefix: "/r", Scopes: []string{"get"}}, {Method: "GET", PathPrefix: "/s"}, {Method: "HEAD", PathPrefix: "/r", Scopes: []string{"head"}}},
		{{Method: "HEAD", PathPrefix: "/r", Scopes: []string{"head"}}, {Method: "GET", PathPrefix: "/r", Scopes: []string{"get"}}},
	} {
		hr, err := NewRules(order)
		if err != nil {
			t.Fatal(err)
		}
		if got := hr.Scopes("HEAD", "/r/1"); !slices.Equal(got, []string{"head"}) {
			t.Errorf("HEAD with a HEAD rule: %v", got)
		}
		if got := hr.Scopes("GET", "/r/1"); !slices.Equal(got, []string{"get"}) {
			t.Errorf("GET with a HEAD rule: %v", got)
		}
	}
	var none *Rules
	if got, err := none.Lookup("GET", "/x"); got != nil || err != nil {
		t.Errorf("nil rules: %v, %v", got, err)
	}
	if _, err := none.Lookup("GET", "/%00"); !errors.Is(err, ErrBadPath) {
		t.Error("nil rules accepted a bad path")
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

// FuzzRulesScopes: matching never panics, NormalizePath gives the path
// referencePath (an independent model written from the README's
// normalisation steps) gives, refuses what it refuses, and a path whose
// normalised first segment is "reports" (or "reports.suffix") always gets
// /reports's scopes.
//
// Mutation: services/sidecar/rules.go NormalizePath skips the unescape (the
// seed "/%2e%2e/reports" then escapes the rule), stops after fewer decoding
// rounds, drops path.Clean, the backslash or the ;parameter step, or
// unescapeValid's "i+2 < len(s)" becomes "i+1 < len(s)".
func FuzzRulesScopes(f *testing.F) {
	rs, err := NewRules([]Rule{{PathPrefix: "/reports", Scopes: []string{"reports:read"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/reports", "/a/../reports", "/%2e%2e/reports", "//reports/x", "/reportsx", "?", "/x/%2e%2e/reports/./y", "/reports%2fz", "/./reports#x",
		"/%2572eports", "/%25252572eports", "/%2525252572eports", "/..;/reports", "/reports;jsessionid=1/x", `\reports\x`, "http://h/reports", "https://h", "a:b://h/reports",
		"/%c0%af", "/%00", "/%7f", "/%c2%85", "/reports.json", "/x%", "/x%2", "/%%2e%2e/reports"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := rs.Lookup("GET", p)
		c, nerr := NormalizePath(p, false)
		if (err == nil) != (nerr == nil) {
			t.Fatalf("path %q: Lookup error %v, NormalizePath error %v", p, err, nerr)
		}
		want, ok := referencePath(p)
		if ok != (nerr == nil) || ok && c != want {
			t.Fatalf("path %q: NormalizePath %q (error %v), the README's steps give %q (accepted %v)", p, c, nerr, want, ok)
		}
		if err != nil {
			return
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(want, "/"), "/")
		protected := first == "reports" || strings.HasPrefix(first, "reports.")
		if protected != (len(got) == 1) {
			t.Fatalf("path %q (normalised %q): scopes %v", p, c, got)
		}
		// Normalising is idempotent (once the characters that still mean
		// something in a raw path are escaped again): a normalised path is
		// the path the upstream reads, not another spelling of one.
		reencoded := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(c)
		if again, err := NormalizePath(reencoded, false); err != nil || again != c {
			t.Fatalf("path %q: normalised %q, again %q, %v", p, c, again, err)
		}
	})
}

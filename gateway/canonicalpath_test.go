package gateway

import (
	"path"
	"testing"
)

// cleanPathRule is canonicalPath by path.Clean alone, the rule plainPath
// shortcuts.
func cleanPathRule(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// The seeds "//a", "/./a" and "/../a" (an empty or dot first segment with
// more after it) kill gremlins' survivors gateway.go:310:10, :310:23 and
// :310:37 on 7eede42: plainPath's segment tests negated one at a time, each
// of which let one of them through as clean (and net/http's ServeMux would
// then answer a redirect, not the JSON 404).
func FuzzCanonicalPath(f *testing.F) {
	for _, p := range []string{"/", "//", "/v1/tokens:validate", "/a/", "/a//b", "/a/./b", "/a/..", "/.", "/..", "/a/.b", "/...", "a", "", "/a/b/", "//a", "/./a", "/../a"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := canonicalPath(p), cleanPathRule(p); got != want {
			t.Fatalf("canonicalPath(%q) = %v, path.Clean says %v", p, got, want)
		}
	})
}

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

func FuzzCanonicalPath(f *testing.F) {
	for _, p := range []string{"/", "//", "/v1/tokens:validate", "/a/", "/a//b", "/a/./b", "/a/..", "/.", "/..", "/a/.b", "/...", "a", "", "/a/b/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := canonicalPath(p), cleanPathRule(p); got != want {
			t.Fatalf("canonicalPath(%q) = %v, path.Clean says %v", p, got, want)
		}
	})
}

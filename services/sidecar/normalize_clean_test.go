package sidecar

import (
	"path"
	"testing"
)

// cleanAbsolute lets NormalizePath skip path.Clean("/" + p) only where that
// is p itself. Mutations: each of its segment tests dropped (`seg == ""`,
// `seg == "."`, `seg == ".."`: "/a//b", "/a/./b", "/a/.." are not clean)
// or the absolute test dropped ("reports" would be kept without its
// slash) fails a seed.
func FuzzCleanAbsolute(f *testing.F) {
	for _, s := range []string{"", "/", "//", "/a", "/a/", "/a//b", "/a/./b", "/a/.", "/a/..", "/..", "/.", "a/b", "/reports",
		"/v1/forward-auth", "/a/b/c", "/.a/..b/...", "/a\\b", "reports"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if cleanAbsolute(p) && path.Clean("/"+p) != p {
			t.Fatalf("cleanAbsolute(%q) but path.Clean gives %q", p, path.Clean("/"+p))
		}
	})
}

// The usual forward-auth path is normalised without an allocation, and
// to path.Clean's answer. Mutation: NormalizePath calling path.Clean("/" +
// raw) unconditionally again allocates twice.
func TestNormalizePathCleanAllocates(t *testing.T) {
	for _, p := range []string{"/reports", "/v1/tokens/abc", "/"} {
		got, err := NormalizePath(p, false)
		if err != nil || got != path.Clean("/"+p) {
			t.Fatalf("NormalizePath(%q) = %q, %v", p, got, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(p, false) }); n != 0 {
			t.Errorf("NormalizePath(%q) allocates %.0f times", p, n)
		}
	}
	for _, p := range []string{"/a/../b", "/a//b", "/a/", "a"} {
		if got, _ := NormalizePath(p, false); got != path.Clean("/"+p) {
			t.Errorf("NormalizePath(%q) = %q, want %q", p, got, path.Clean("/"+p))
		}
	}
}

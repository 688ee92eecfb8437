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

// plainRequestPath lets NormalizePath return a path as it is only where
// every step would. Mutations: each of its refused bytes let through ('?',
// '#', '%', '\\', ';', a control byte below 0x20, 0x7f, a byte above it:
// "/\u0080" is a C1 control, "/\xff" not UTF-8) or the cleanness test
// dropped ("/a/../b", "reports") fails a seed.
func FuzzPlainRequestPath(f *testing.F) {
	for _, s := range []string{"", "/", "/reports", "/v1/tokens:validate", "/http://h/p", "/a?b", "/a#b", "/a%41", "/a\\b",
		"/a;x", "/a\x00", "/a\x1f", "/a\x7f", "/\u0080", "/\xff", "/é", "/a/../b", "/a//b", "/a/", "reports", "/A/B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !plainRequestPath(p) {
			return
		}
		for _, ignoreCase := range []bool{false, true} {
			want, wantErr := normalizePath(p, ignoreCase)
			got, err := NormalizePath(p, ignoreCase)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("NormalizePath(%q, %v) = %q, %v; the steps give %q, %v", p, ignoreCase, got, err, want, wantErr)
			}
		}
	})
}

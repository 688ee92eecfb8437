//go:build !race

// testing.AllocsPerRun is unreliable under the race detector, whose
// instrumentation allocates; scripts/test.sh runs this file without -race.

package sidecar

import (
	"path"
	"testing"
)

// Every identity header has a constant canonical key: the fallback
// canonicalises (an allocation and ~1.3k instructions an allow).
// Mutation: the HeaderPrincipalKind case dropped (as it was until #18's
// third pass) fails it.
func TestCanonicalKeyAllocatesNothing(t *testing.T) {
	for _, k := range IdentityHeaders {
		if n := testing.AllocsPerRun(100, func() { _ = canonicalKey(k) }); n != 0 {
			t.Errorf("canonicalKey(%q) allocates %.0f times: it has no constant key", k, n)
		}
	}
}

// A path that needs no cleaning is normalised without an allocation, by
// the steps too (a query cut off). Mutation: normalizePath calling
// path.Clean("/" + raw) unconditionally again allocates twice.
func TestNormalizePathAllocatesNothing(t *testing.T) {
	for p, want := range map[string]string{"/reports?x=1": "/reports", "/v1/tokens/abc#top": "/v1/tokens/abc", "/": "/", "/reports": "/reports"} {
		got, err := NormalizePath(p, false)
		if err != nil || got != want {
			t.Fatalf("NormalizePath(%q) = %q, %v; want %q", p, got, err, want)
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

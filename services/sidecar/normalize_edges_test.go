package sidecar

import (
	"errors"
	"testing"
)

// NormalizePath's steps 1 and 4 at the edges of their character classes:
// an absolute-form URI is one whose scheme is a letter then letters,
// digits, +, - or . (RFC 3986), and a code point below U+0020, U+007F and
// U+0080 to U+009F are control characters; space and U+00A0 are not.
//
// Mutations (gremlins survivors): services/sidecar/rules.go
// stripAbsoluteForm's scheme class with an end excluded (`c >= 'a'` →
// `c > 'a'` and the like, `j > 0` → `j >= 0`, `i <= 0` → `i < 0`), and
// NormalizePath's control test with an end moved (`c < 0x20` → `<=`,
// `c >= 0x80` → `>`, `c < 0xa0` → `<=`), and its path search `j >= 0` → `j > 0` (an
// empty authority's path dropped: http:///reports dodged /reports).
func TestNormalizePathEdges(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"a://h/r":    "/r",
		"z://h/r":    "/r",
		"A://h/r":    "/r",
		"Z://h/r":    "/r",
		"a0://h/r":   "/r",
		"a9://h/r":   "/r",
		"a+-.://h/r": "/r",
		"a_b://h/r":  "/a_b:/h/r", // _ is not a scheme character
		"0a://h/r":   "/0a:/h/r",  // a scheme starts with a letter
		"://h/r":     "/:/h/r",    // no scheme at all
		"/r%20s":     "/r s",
		"/r%C2%A0s":  "/r\u00a0s",
		"/r%7Es":     "/r~s",
		"http:///r":  "/r", // an empty authority: the path starts at once
		"http://h":   "/",
		"/r%2Fs%3F":  "/r/s?",
	} {
		got, err := NormalizePath(raw, false)
		if err != nil || got != want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"/r%1Fs", "/r%00s", "/r%7Fs", "/r%C2%80s", "/r%C2%9Fs"} {
		if got, err := NormalizePath(raw, false); !errors.Is(err, ErrBadPath) {
			t.Errorf("NormalizePath(%q) = %q, %v; want ErrBadPath", raw, got, err)
		}
	}
}

package sidecar

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// referencePath is an independent model of the path the sidecar matches,
// written from the README's eight normalisation steps ("Matching"), not
// from NormalizePath: regexps where the code scans by hand, a segment stack
// where it calls path.Clean, unicode.IsControl where it lists ranges. It
// answers the path and whether it is accepted (case-sensitive matching).
// FuzzRulesScopes holds NormalizePath to it, so a mutation in any step of
// NormalizePath shows as a difference.
func referencePath(raw string) (string, bool) {
	// (1) absolute-form: scheme "://" authority, keep what follows.
	if m := absoluteForm.FindStringIndex(raw); m != nil {
		raw = raw[m[1]:]
	}
	// (2) the query and fragment, from the first raw ? or #.
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	// (3) valid %XX decoded until nothing changes, at most 4 rounds.
	for range 4 {
		raw = decodeEscapes(raw)
	}
	if decodeEscapes(raw) != raw {
		return "", false
	}
	// (4) no control character, UTF-8 only.
	if !utf8.ValidString(raw) || strings.IndexFunc(raw, unicode.IsControl) >= 0 {
		return "", false
	}
	// (5) a backslash is a slash; (6) ;parameters dropped per segment;
	// (7) dot segments, empty segments and the trailing slash resolved.
	var out []string
	for _, seg := range strings.FieldsFunc(raw, func(r rune) bool { return r == '/' || r == '\\' }) {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/"), true
}

var (
	absoluteForm = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*`)
	validEscape  = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
)

func decodeEscapes(s string) string {
	return validEscape.ReplaceAllStringFunc(s, func(e string) string {
		b, _ := strconv.ParseUint(e[1:], 16, 8)
		return string([]byte{byte(b)})
	})
}

// Package sidecar puts keymint in front of a resource service: an Envoy
// ext_authz server and an nginx/Traefik forward-auth handler, both over one
// Validator and one set of route rules.
package sidecar

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// Rule maps a method and path prefix to the scopes a token needs there.
type Rule struct {
	// Method is an HTTP method, or empty / "*" for any.
	Method string `json:"method,omitempty"`
	// PathPrefix matches whole path segments: /reports matches /reports,
	// /reports/1 and /reports.json, not /reportsX (see Lookup).
	PathPrefix string   `json:"path"`
	Scopes     []string `json:"scopes,omitempty"`
}

// Rules picks the rule for a request: the longest matching prefix, a rule
// with the exact method before one for any method (a GET rule also covers
// HEAD). A request no rule matches needs a valid token and no scope.
type Rules struct {
	rules      []Rule
	ignoreCase bool
}

// rulesFile is the file form: {"routes": [{method, path, scopes}]} in YAML or JSON.
type rulesFile struct {
	Routes []Rule `json:"routes"`
}

// NewRules checks and orders rules.
func NewRules(rules []Rule) (*Rules, error) {
	out := make([]Rule, 0, len(rules))
	for i, r := range rules {
		r.Method = strings.ToUpper(strings.TrimSpace(r.Method))
		if r.Method == "*" {
			r.Method = ""
		}
		if !strings.HasPrefix(r.PathPrefix, "/") {
			return nil, fmt.Errorf("route %d: path %q must start with /", i+1, r.PathPrefix)
		}
		p, err := NormalizePath(r.PathPrefix, false)
		if err != nil {
			return nil, fmt.Errorf("route %d: path %q: %w", i+1, r.PathPrefix, err)
		}
		r.PathPrefix = p
		for _, s := range r.Scopes {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " ,\t") {
				return nil, fmt.Errorf("route %d: scope %q is not valid", i+1, s)
			}
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if len(out[a].PathPrefix) != len(out[b].PathPrefix) {
			return len(out[a].PathPrefix) > len(out[b].PathPrefix)
		}
		// One prefix's rules side by side (Lookup's HEAD case relies on it).
		if out[a].PathPrefix != out[b].PathPrefix {
			return out[a].PathPrefix < out[b].PathPrefix
		}
		return out[a].Method != "" && out[b].Method == ""
	})
	return &Rules{rules: out}, nil
}

// LoadRules reads rules from a YAML or JSON file: routes: [{method, path, scopes}].
func LoadRules(file string) (*Rules, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read route rules: %w", err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("route rules %s: %w", file, err)
	}
	var f rulesFile
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("route rules %s: %w", file, err)
	}
	return NewRules(f.Routes)
}

// ParseRule reads the flag form "METHOD /path=scope1,scope2" (method
// optional, "*" for any).
func ParseRule(s string) (Rule, error) {
	lhs, scopes, _ := strings.Cut(s, "=")
	fields := strings.Fields(lhs)
	var r Rule
	switch len(fields) {
	case 1:
		r.PathPrefix = fields[0]
	case 2:
		r.Method, r.PathPrefix = fields[0], fields[1]
	default:
		return Rule{}, fmt.Errorf("route %q: want \"[METHOD] /path=scope,scope\"", s)
	}
	for _, sc := range strings.Split(scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			r.Scopes = append(r.Scopes, sc)
		}
	}
	return r, nil
}

// IgnoringCase returns the rules matching paths case-insensitively (after
// Unicode simple case folding), for upstreams that route /REPORTS like
// /reports.
func (rs *Rules) IgnoringCase() (*Rules, error) {
	rules := rs.List()
	for i := range rules {
		rules[i].PathPrefix = strings.ToLower(rules[i].PathPrefix)
	}
	// Checked and sorted again: lower-casing can change a prefix's length
	// in bytes.
	out, err := NewRules(rules)
	if err != nil {
		return nil, err
	}
	out.ignoreCase = true
	return out, nil
}

// ErrBadPath is a request path keymint refuses to match, because upstreams
// read it in different ways: NUL or other control characters, or bytes
// that are not UTF-8 once decoded (overlong encodings of / and . among them),
// or percent-encoding nested deeper than any upstream decodes.
var ErrBadPath = errors.New("the request path has control characters, is not UTF-8 or is encoded more than 4 times over")

// Scopes returns the scopes a request needs; nil for a path Lookup refuses
// (use Lookup where that matters).
func (rs *Rules) Scopes(method, rawPath string) []string {
	s, _ := rs.Lookup(method, rawPath)
	return s
}

// Lookup returns the scopes a request needs, or ErrBadPath. The path is
// normalised by NormalizePath (lower-cased too when matching ignores case);
// a rule's prefix matches whole segments (/reports matches /reports and
// /reports/1, not /reportsX) and, for its last segment, a ".suffix" format
// extension (/reports.json, /reports.): Spring, Rails and others route
// those to /reports.
func (rs *Rules) Lookup(method, rawPath string) ([]string, error) {
	p, err := NormalizePath(rawPath, rs != nil && rs.ignoreCase)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		return nil, nil
	}
	method = strings.ToUpper(method)
	for i, r := range rs.rules {
		if r.PathPrefix != "/" && p != r.PathPrefix &&
			!strings.HasPrefix(p, r.PathPrefix+"/") && !strings.HasPrefix(p, r.PathPrefix+".") {
			continue
		}
		switch {
		case r.Method == "" || r.Method == method:
			return r.Scopes, nil
		case method == "HEAD" && r.Method == "GET":
			// A HEAD rule for the same prefix, if any, comes first.
			for _, o := range rs.rules[i+1:] {
				if o.PathPrefix != r.PathPrefix {
					break
				}
				if o.Method == "HEAD" {
					return o.Scopes, nil
				}
			}
			return r.Scopes, nil
		}
	}
	return nil, nil
}

// maxDecodeRounds bounds repeated percent-decoding (%2572 → %72 → r).
const maxDecodeRounds = 4

// NormalizePath is the path rules are matched against, in this order:
//  1. an absolute-form URI (http://host/p) keeps only its path /p;
//  2. the query and fragment (from the first raw ? or #) are dropped;
//  3. valid percent-escapes are decoded, repeatedly until nothing changes
//     (a path still encoded after 4 rounds is refused), so a
//     double-decoding upstream gains nothing;
//  4. a path with NUL or another control character, or that is not UTF-8,
//     is refused (ErrBadPath);
//  5. a backslash counts as a slash;
//  6. ;parameters are removed from every segment (/reports;jsessionid=1/x
//     is /reports/x), as Tomcat, Jetty and Spring do;
//  7. dot segments and repeated slashes are resolved and a trailing slash
//     dropped (path.Clean);
//  8. with ignoreCase, the path is lower-cased.
//
// Every step only ever makes more paths match a rule, never fewer: a path an
// upstream reads as /reports must not dodge the rule for /reports.
func NormalizePath(raw string, ignoreCase bool) (string, error) {
	if plainRequestPath(raw) {
		// Every step below leaves such a path as it is.
		if ignoreCase {
			return strings.ToLower(raw), nil
		}
		return raw, nil
	}
	return normalizePath(raw, ignoreCase)
}

// plainRequestPath reports whether raw is a path NormalizePath's steps all
// leave as it is: absolute (so not absolute-form, whose scheme starts with
// a letter), printable ASCII without '?', '#', '%', '\\' or ';', and clean.
// That is the usual request's path, and one pass over it costs a fraction
// of the steps' (FuzzPlainRequestPath holds normalizePath to it).
func plainRequestPath(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c < 0x20 || c >= 0x7f, c == '?', c == '#', c == '%', c == '\\', c == ';':
			return false
		}
	}
	return cleanAbsolute(raw)
}

// normalizePath is NormalizePath's steps, in order.
func normalizePath(raw string, ignoreCase bool) (string, error) {
	raw = stripAbsoluteForm(raw)
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	for round := 0; ; round++ {
		d := unescapeValid(raw)
		if d == raw {
			break
		}
		if round == maxDecodeRounds {
			return "", ErrBadPath
		}
		raw = d
	}
	if !utf8.ValidString(raw) {
		return "", ErrBadPath
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return "", ErrBadPath
		}
	}
	raw = strings.ReplaceAll(raw, "\\", "/")
	if strings.Contains(raw, ";") {
		segs := strings.Split(raw, "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		raw = strings.Join(segs, "/")
	}
	p := raw
	if !cleanAbsolute(raw) {
		p = path.Clean("/" + raw)
	}
	if ignoreCase {
		p = strings.ToLower(p)
	}
	return p, nil
}

// cleanAbsolute reports whether p is an absolute path path.Clean leaves as
// it is ("/", or segments none of which is empty, "." or ".."), so that
// path.Clean("/" + p) is p: the usual request's path then costs
// NormalizePath neither the concatenation nor path.Clean's copy (two
// allocations of every forward-auth call).
func cleanAbsolute(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if len(p) == 1 {
		return true
	}
	for rest := p[1:]; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		rest = after
	}
}

// stripAbsoluteForm turns scheme://authority/path into /path (the
// authority is not matched; Host routing is the proxy's).
func stripAbsoluteForm(raw string) string {
	i := strings.Index(raw, "://")
	if i <= 0 {
		return raw
	}
	for j, c := range raw[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return raw
		}
	}
	rest := raw[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		return rest[j:]
	}
	return "/"
}

// unescapeValid decodes every valid %XX escape and leaves invalid ones as
// they are (url.PathUnescape would give up on the whole path).
func unescapeValid(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// List returns the rules, most specific first.
func (rs *Rules) List() []Rule {
	if rs == nil {
		return nil
	}
	return append([]Rule(nil), rs.rules...)
}

// Package sidecar puts keymint in front of a resource service: an Envoy
// ext_authz server and an nginx/Traefik forward-auth handler, both over one
// Validator and one set of route rules.
package sidecar

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Rule maps a method and path prefix to the scopes a token needs there.
type Rule struct {
	// Method is an HTTP method, or empty / "*" for any.
	Method string `json:"method,omitempty"`
	// PathPrefix matches whole path segments: /reports matches /reports and
	// /reports/1, not /reportsX.
	PathPrefix string   `json:"path"`
	Scopes     []string `json:"scopes,omitempty"`
}

// Rules picks the rule for a request: the longest matching prefix, a rule
// with the exact method before one for any method. A request no rule matches
// needs a valid token and no scope.
type Rules struct {
	rules []Rule
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
		r.PathPrefix = cleanPath(r.PathPrefix)
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

// Scopes returns the scopes a request needs.
func (rs *Rules) Scopes(method, rawPath string) []string {
	if rs == nil {
		return nil
	}
	p := cleanPath(rawPath)
	method = strings.ToUpper(method)
	for _, r := range rs.rules {
		if r.Method != "" && r.Method != method {
			continue
		}
		if p == r.PathPrefix || r.PathPrefix == "/" || strings.HasPrefix(p, r.PathPrefix+"/") {
			return r.Scopes
		}
	}
	return nil
}

// cleanPath drops the query, decodes percent-escapes and resolves dot
// segments and repeated slashes, so /a/../reports and /%72eports cannot
// dodge the rule for /reports.
func cleanPath(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	p := path.Clean("/" + raw)
	return p
}

// List returns the rules, most specific first.
func (rs *Rules) List() []Rule {
	if rs == nil {
		return nil
	}
	return append([]Rule(nil), rs.rules...)
}

package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// apiSpec is what the gateway reads from its own OpenAPI document: for each
// path, the methods it answers and the query parameters each method takes.
// The document is the one source of the routes' shapes, so the Allow header
// of a 405 and the refusal of an unknown query parameter cannot drift from
// what /openapi.json says.
type apiSpec struct {
	paths []specPath
}

// specPath is one path template of the document.
type specPath struct {
	template string
	re       *regexp.Regexp
	// query lists the query parameters of each method (upper case).
	query map[string][]string
}

// maxParamNameLen bounds the parameter names an error message repeats: a
// token (km_ and 49 characters) pasted as a name is longer.
const maxParamNameLen = 32

// plainParamName is what a query parameter name must look like to be named
// in an error message; anything else (a pasted secret, a control byte) is
// described without being repeated.
var plainParamName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]*$`)

// loadAPISpec reads keymint's embedded OpenAPI document.
func loadAPISpec() (*apiSpec, error) {
	return parseAPISpec(keymintv1.OpenAPI)
}

// parseAPISpec reads the paths of an OpenAPI document.
func parseAPISpec(doc []byte) (*apiSpec, error) {
	type param struct {
		Name string `json:"name"`
		In   string `json:"in"`
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("gateway: read the OpenAPI document: %w", err)
	}
	s := &apiSpec{}
	for _, tmpl := range slices.Sorted(maps.Keys(d.Paths)) {
		item := d.Paths[tmpl]
		var common []param
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &common); err != nil {
				return nil, fmt.Errorf("gateway: OpenAPI path %s: %w", tmpl, err)
			}
		}
		p := specPath{template: tmpl, re: templateRegexp(tmpl), query: map[string][]string{}}
		for key, raw := range item {
			method := strings.ToUpper(key)
			if !isHTTPMethod(method) {
				continue
			}
			var op struct {
				Parameters []param `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("gateway: OpenAPI %s %s: %w", method, tmpl, err)
			}
			names := []string{}
			for _, prm := range slices.Concat(common, op.Parameters) {
				if prm.In == "query" {
					names = append(names, prm.Name)
				}
			}
			p.query[method] = names
		}
		s.paths = append(s.paths, p)
	}
	return s, nil
}

func isHTTPMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// templateRegexp turns a path template ("/v1/tokens/{id}:revoke") into a
// regexp matching the paths it describes: a {name} is one non-empty segment.
func templateRegexp(tmpl string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for rest := tmpl; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:open]))
		b.WriteString(`[^/]+`)
		rest = rest[open+end+1:]
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// operation returns the query parameters of method on path and whether the
// document describes that operation. When several templates match (an id
// and an id with a :verb), the longest template wins, as its literal verb
// is the more specific.
func (s *apiSpec) operation(method, path string) ([]string, bool) {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	best, found := -1, false
	var query []string
	for _, p := range s.paths {
		q, ok := p.query[method]
		if !ok || !p.re.MatchString(path) || len(p.template) <= best {
			continue
		}
		best, query, found = len(p.template), q, true
	}
	return query, found
}

// allow lists the methods the document gives path, sorted; nil when it
// describes no such path. A template with a literal :verb that matches hides
// the plain {id} ones (/v1/tokens/x:rotate is not a GET). HEAD is not added
// with GET: setAllow does that, and the methods are compared with requests
// whose HEAD ServeHTTP has made a GET.
func (s *apiSpec) allow(path string) []string {
	var out []string
	verbs := false
	for _, p := range s.paths {
		if hasVerb(p.template) && p.re.MatchString(path) {
			verbs = true
		}
	}
	for _, p := range s.paths {
		if !p.re.MatchString(path) || (verbs && !hasVerb(p.template)) {
			continue
		}
		for m := range p.query {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hasVerb reports whether a template's last segment ends in a literal
// ":verb" (after any {param}).
func hasVerb(tmpl string) bool {
	last := tmpl[strings.LastIndexByte(tmpl, '/')+1:]
	return strings.Contains(last[strings.LastIndexByte(last, '}')+1:], ":")
}

// checkQuery refuses a query parameter the operation does not take, naming
// it (never its value) when the name is a plain identifier. Requests the
// document does not describe are left to routing (a 404 or 405).
func (s *apiSpec) checkQuery(r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	known, ok := s.operation(r.Method, r.URL.Path)
	if !ok {
		return nil
	}
	values := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if slices.Contains(known, name) {
			continue
		}
		if len(name) <= maxParamNameLen && plainParamName.MatchString(name) {
			if len(known) == 0 {
				return status.Errorf(codes.InvalidArgument, "unknown query parameter %q: this call takes none", name)
			}
			return status.Errorf(codes.InvalidArgument, "unknown query parameter %q (this call takes %s)", name, strings.Join(known, ", "))
		}
		return status.Error(codes.InvalidArgument, "unknown query parameter (its name is not repeated: it is not a plain identifier)")
	}
	return nil
}

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
	segments []templateSegment
	// query lists the query parameters of each method (upper case).
	query map[string][]string
}

// templateSegment is one '/'-separated segment of a path template: a
// literal, or a {param} (one or more characters other than '/') between a
// literal prefix and suffix ("{id}:revoke"). A compiled regexp a template
// was some 3.5 KB of pointers the collector marked on every cycle, for
// what these three strings say.
type templateSegment struct {
	prefix, suffix string
	param          bool
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
		segments, err := compileTemplate(tmpl)
		if err != nil {
			return nil, err
		}
		p := specPath{template: tmpl, segments: segments, query: map[string][]string{}}
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

// compileTemplate splits a path template ("/v1/tokens/{id}:revoke") into
// its segments. A segment with a '{' and no '}' after it is literal; one
// with two {params} is refused: no path of the document has one, and
// matching it takes a search where one param a segment is two compares.
func compileTemplate(tmpl string) ([]templateSegment, error) {
	var out []templateSegment
	for seg := range strings.SplitSeq(tmpl, "/") {
		open := strings.IndexByte(seg, '{')
		end := -1
		if open >= 0 {
			end = strings.IndexByte(seg[open:], '}')
		}
		if end < 0 {
			out = append(out, templateSegment{prefix: seg})
			continue
		}
		suffix := seg[open+end+1:]
		if strings.IndexByte(suffix, '{') >= 0 && strings.IndexByte(suffix, '}') >= 0 {
			return nil, fmt.Errorf("gateway: OpenAPI path %s: two {params} in one segment", tmpl)
		}
		out = append(out, templateSegment{prefix: seg[:open], suffix: suffix, param: true})
	}
	return out, nil
}

// matches reports whether path is one the template describes: as many
// segments, each literal one equal, each {param} one at least one
// character long between its prefix and suffix (what the regexp
// ^prefix[^/]+suffix$ of the segment would match).
func (p *specPath) matches(path string) bool {
	rest := path
	for i, t := range p.segments {
		seg, tail, more := strings.Cut(rest, "/")
		if more != (i < len(p.segments)-1) {
			return false // not as many segments as the template
		}
		rest = tail
		if !t.param {
			if seg != t.prefix {
				return false
			}
			continue
		}
		if len(seg) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(seg, t.prefix) || !strings.HasSuffix(seg, t.suffix) {
			return false
		}
	}
	return true
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
		if !ok || !p.matches(path) || len(p.template) <= best {
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
		if hasVerb(p.template) && p.matches(path) {
			verbs = true
		}
	}
	for _, p := range s.paths {
		if !p.matches(path) || (verbs && !hasVerb(p.template)) {
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

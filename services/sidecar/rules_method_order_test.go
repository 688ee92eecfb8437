package sidecar

import (
	"slices"
	"testing"
)

// For one prefix, a rule with the request's exact method wins over one for
// any method, whatever order the file lists them in, and a HEAD rule over
// the GET rule a HEAD otherwise falls under (Rules' doc).
//
// Mutations (gremlins survivors): services/sidecar/rules.go NewRules's sort
// `out[a].Method != "" && out[b].Method == ""` with either side negated:
// the listed order is kept, and the any-method rule listed first wins.
func TestExactMethodBeforeAnyMethod(t *testing.T) {
	t.Parallel()
	rs, err := NewRules([]Rule{
		{Method: "*", PathPrefix: "/r", Scopes: []string{"any"}},
		{Method: "POST", PathPrefix: "/r", Scopes: []string{"post"}},
		{Method: "", PathPrefix: "/s", Scopes: []string{"s-any"}},
		{Method: "GET", PathPrefix: "/s", Scopes: []string{"s-get"}},
		{Method: "HEAD", PathPrefix: "/s", Scopes: []string{"s-head"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         []string
	}{
		{"POST", "/r/1", []string{"post"}},
		{"GET", "/r/1", []string{"any"}},
		{"GET", "/s", []string{"s-get"}},
		{"HEAD", "/s", []string{"s-head"}},
		{"DELETE", "/s", []string{"s-any"}},
	} {
		if got := rs.Scopes(c.method, c.path); !slices.Equal(got, c.want) {
			t.Errorf("%s %s needs %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

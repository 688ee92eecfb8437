package sidecar

import (
	"strings"
	"testing"
)

// A bad route is named by its place in the list, counted from 1 as a
// routes file reads, so an operator finds the line to fix.
//
// Mutations (gremlins survivors and one not covered): services/sidecar/rules.go
// NewRules' `i+1` → `i-1` in the errors for a path without a leading /, a
// path NormalizePath refuses and a bad scope.
func TestRuleErrorsNameTheRoute(t *testing.T) {
	t.Parallel()
	ok := Rule{PathPrefix: "/ok", Scopes: []string{"a"}}
	for _, bad := range []Rule{
		{PathPrefix: "reports"},
		{PathPrefix: "/reports%00"},
		{PathPrefix: "/reports", Scopes: []string{"a b"}},
	} {
		_, err := NewRules([]Rule{ok, ok, bad, ok})
		if err == nil || !strings.HasPrefix(err.Error(), "route 3: ") {
			t.Errorf("NewRules with %+v third: %v; want an error naming route 3", bad, err)
		}
	}
}

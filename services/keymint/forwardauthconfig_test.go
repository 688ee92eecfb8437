package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/sidecar"
)

// A bad --forward-auth-style stops serve and sidecar before anything
// starts; --routes-ignore-case reaches the rules.
func TestForwardAuthFlags(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"serve":   runServe(context.Background(), []string{"--data-dir", t.TempDir(), "--forward-auth-style", "envoy"}, io.Discard),
		"sidecar": runSidecar(context.Background(), []string{"--central-addr", "127.0.0.1:1", "--forward-auth-style", "envoy"}, io.Discard),
	} {
		if err == nil || !strings.Contains(err.Error(), "forward-auth-style") {
			t.Errorf("%s --forward-auth-style envoy: %v", name, err)
		}
	}
	c := Config{Routes: []string{"GET /Reports=reports:read"}, RoutesIgnoreCase: true, ForwardAuthStyle: "nginx"}
	rules, err := c.routeRules()
	if err != nil {
		t.Fatal(err)
	}
	if got := rules.Scopes("GET", "/REPORTS/1"); !slices.Equal(got, []string{"reports:read"}) {
		t.Errorf("ignoring case: %v", got)
	}
	if cfg := c.sidecarConfig(nil, rules, nil); cfg.Style != sidecar.StyleNginx {
		t.Errorf("style %q", cfg.Style)
	}
	c.RoutesIgnoreCase = false
	rules, _ = c.routeRules()
	if got := rules.Scopes("GET", "/REPORTS/1"); got != nil {
		t.Errorf("case-sensitive: %v", got)
	}
}

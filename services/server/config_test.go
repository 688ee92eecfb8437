package server

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/keymint/keymint/services/sidecar"
)

// Valid sign-in limits build a throttle.
func TestSignInThrottle(t *testing.T) {
	t.Parallel()
	var c Config
	c.Abuse.AccountLimit, c.Abuse.IPLimit = "off", "3/1m"
	th, err := c.Abuse.signInThrottle(nil, 0, nil, slog.New(slog.DiscardHandler))
	if err != nil || th == nil {
		t.Fatalf("valid limits refused: %v", err)
	}
}

// --routes-ignore-case and --forward-auth-style reach the rules and the
// sidecar configuration; KEYMINT_ROUTES' ';'-separated rules split.
func TestRoutesConfig(t *testing.T) {
	t.Parallel()
	c := RoutesConfig{Routes: []string{"GET /Reports=reports:read"}, RoutesIgnoreCase: true, ForwardAuthStyle: "nginx"}
	rules, err := c.RouteRules()
	if err != nil {
		t.Fatal(err)
	}
	if got := rules.Scopes("GET", "/REPORTS/1"); !slices.Equal(got, []string{"reports:read"}) {
		t.Errorf("ignoring case: %v", got)
	}
	if cfg := c.SidecarConfig(nil, rules, nil, false); cfg.Style != sidecar.StyleNginx {
		t.Errorf("style %q", cfg.Style)
	}
	c.RoutesIgnoreCase = false
	rules, _ = c.RouteRules()
	if got := rules.Scopes("GET", "/REPORTS/1"); got != nil {
		t.Errorf("case-sensitive: %v", got)
	}
	c.Routes = []string{"GET /a=a:read;POST /b=b:write\nGET /c=c:read"}
	rules, err = c.RouteRules()
	if err != nil || len(rules.List()) != 3 {
		t.Fatalf("env-style list: %v %v", rules, err)
	}
}

package server

import (
	"strings"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/sidecar"
)

// RoutesConfig is what ext_authz and forward-auth check a request against,
// for serve and sidecar alike.
type RoutesConfig struct {
	RoutesFile string `name:"routes-file" env:"KEYMINT_ROUTES_FILE" help:"Route rules for ext_authz and forward-auth: YAML routes: [{method, path, scopes}]."`
	// Routes are "[METHOD] /path=scope,scope" rules; KEYMINT_ROUTES holds
	// several, ';'- or newline-separated.
	Routes           []string `name:"route" env:"KEYMINT_ROUTES" sep:"none" placeholder:"RULE" help:"A route rule \"[METHOD] /path=scope,scope\"; repeatable (KEYMINT_ROUTES: ';'-separated)."`
	StripAuth        bool     `name:"strip-authorization" env:"KEYMINT_STRIP_AUTHORIZATION" help:"ext_authz: remove the authorization header before the upstream sees it."`
	ForwardAuthStyle string   `name:"forward-auth-style" env:"KEYMINT_FORWARD_AUTH_STYLE" default:"auto" help:"Whose headers forward-auth believes for the original method and URI: nginx (X-Original-*), traefik or caddy (X-Forwarded-*), or auto (either; refused when they disagree)."`
	RoutesIgnoreCase bool     `name:"routes-ignore-case" env:"KEYMINT_ROUTES_IGNORE_CASE" help:"Route rules match paths case-insensitively, for upstreams that do."`
}

func (c *RoutesConfig) problems() []string {
	var out []string
	if _, err := sidecar.ParseStyle(c.ForwardAuthStyle); err != nil {
		out = append(out, err.Error())
	}
	if _, err := c.RouteRules(); err != nil {
		out = append(out, err.Error())
	}
	return out
}

// RouteRules builds the route rules from the rules file and the --route
// flags (flags last, so they are listed after the file).
func (c *RoutesConfig) RouteRules() (*sidecar.Rules, error) {
	var rules []sidecar.Rule
	if c.RoutesFile != "" {
		rs, err := sidecar.LoadRules(c.RoutesFile)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs.List()...)
	}
	for _, entry := range c.Routes {
		for _, v := range strings.FieldsFunc(entry, func(r rune) bool { return r == ';' || r == '\n' }) {
			r, err := sidecar.ParseRule(v)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	rs, err := sidecar.NewRules(rules)
	if err != nil || !c.RoutesIgnoreCase {
		return rs, err
	}
	return rs.IgnoringCase()
}

// SidecarConfig is what ext_authz and forward-auth share (problems has
// checked the style).
func (c *RoutesConfig) SidecarConfig(v sidecar.Validator, rules *sidecar.Rules, clients *clientip.Resolver, identityBody bool) sidecar.Config {
	style, _ := sidecar.ParseStyle(c.ForwardAuthStyle)
	return sidecar.Config{Validator: v, Rules: rules, StripAuthorization: c.StripAuth, Clients: clients, Style: style,
		IdentityBody: identityBody}
}

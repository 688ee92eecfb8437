package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keymint/keymint/services/secretscan"
)

// integrationsConfig is the settings of RFC 7662 introspection, the
// forward-auth identity body and GitHub secret scanning.
type integrationsConfig struct {
	// Issuer is introspection's "iss" and the RFC 8414 issuer; empty:
	// http:// and the command's HTTP listen address.
	Issuer string
	// IdentityBody makes forward-auth answer an allow with a JSON identity
	// body (sub, scope, exp, org).
	IdentityBody bool
	// GitHubKeys is a file or an https:// URL of GitHub's secret-scanning
	// public keys; empty: the partner endpoint is off.
	GitHubKeys string
	// GitHubKeysRefresh is how often the key list is fetched again.
	GitHubKeysRefresh time.Duration
	// leakPassHook, set by tests only, runs before each pass of the leak
	// report processor; false skips the pass.
	leakPassHook func(context.Context) bool
}

// bind registers the integration flags of names (see bindFlags).
func (ic *integrationsConfig) bind(fs *flag.FlagSet, names map[string]bool,
	str func(p *string, name, def, help string), dur func(p *time.Duration, name string, def time.Duration, help string)) {
	boolean := func(p *bool, name, help string) {
		def, _ := strconv.ParseBool(os.Getenv(envName(name)))
		fs.BoolVar(p, name, def, help+" ("+envName(name)+")")
	}
	if names["issuer"] {
		str(&ic.Issuer, "issuer", "", "issuer URL of introspection answers and /.well-known/oauth-authorization-server (default: http://<http listen address>)")
	}
	if names["forward-auth-identity-body"] {
		boolean(&ic.IdentityBody, "forward-auth-identity-body", "forward-auth allows answer a JSON identity body {sub, scope, exp, org}")
	}
	if names["github-keys"] {
		str(&ic.GitHubKeys, "github-keys", "", "GitHub secret-scanning public keys: a file or an https:// URL (https://api.github.com/meta/public_keys/secret_scanning); empty: the partner endpoint is off")
		dur(&ic.GitHubKeysRefresh, "github-keys-refresh", time.Hour, "how often the GitHub key list is fetched again")
	}
}

// problems lists what is wrong with the settings bound in set.
func (ic *integrationsConfig) problems(set map[string]bool) []string {
	var out []string
	if set["issuer"] && ic.Issuer != "" {
		u, err := url.Parse(ic.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			out = append(out, fmt.Sprintf("issuer %q: want an http(s):// URL with no query or fragment", ic.Issuer))
		}
	}
	if set["github-keys-refresh"] && ic.GitHubKeysRefresh < time.Minute {
		out = append(out, "github-keys-refresh: want at least 1m")
	}
	if set["github-keys"] && strings.HasPrefix(ic.GitHubKeys, "http://") {
		out = append(out, "github-keys: fetch the key list over https://, or give a file")
	}
	return out
}

// issuer is Issuer, or http:// and addr.
func (ic *integrationsConfig) issuer(addr string) string {
	if ic.Issuer != "" {
		return strings.TrimRight(ic.Issuer, "/")
	}
	return "http://" + addr
}

// githubKeySet loads GitHub's key list: a file must load now (a wrong path
// is a configuration error); a URL that fails is retried in the
// background, the endpoint answering 503 meanwhile.
func (ic *integrationsConfig) githubKeySet(ctx context.Context, log *slog.Logger) (*secretscan.KeySet, error) {
	ks := secretscan.NewKeySet(secretscan.KeySetConfig{Source: ic.GitHubKeys, Refresh: ic.GitHubKeysRefresh, Logger: log})
	if err := ks.Load(ctx); err != nil {
		if !strings.HasPrefix(ic.GitHubKeys, "https://") {
			return nil, err
		}
		log.Warn("github key list not loaded; the secret scanning endpoint answers 503 until it is", "err", err.Error())
	}
	return ks, nil
}

package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/keymint/keymint/services/secretscan"
)

// IdentityConfig is what introspection and forward-auth say about a
// token, for serve and sidecar alike.
type IdentityConfig struct {
	// Issuer is introspection's "iss" and the RFC 8414 issuer; empty:
	// http:// and the command's HTTP listen address.
	Issuer string `name:"issuer" env:"KEYMINT_ISSUER" help:"Issuer URL of introspection answers and /.well-known/oauth-authorization-server (default: http://<http listen address>)."`
	// IdentityBody makes forward-auth answer an allow with a JSON identity
	// body (sub, scope, exp, org).
	IdentityBody bool `name:"forward-auth-identity-body" env:"KEYMINT_FORWARD_AUTH_IDENTITY_BODY" help:"Forward-auth allows answer a JSON identity body {sub, scope, exp, org}."`
}

func (ic *IdentityConfig) problems() []string {
	if ic.Issuer == "" {
		return nil
	}
	u, err := url.Parse(ic.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return []string{fmt.Sprintf("issuer %q: want an http(s):// URL with no query or fragment", ic.Issuer)}
	}
	return nil
}

// IntegrationsConfig is the settings of RFC 7662 introspection, the
// forward-auth identity body and GitHub secret scanning.
type IntegrationsConfig struct {
	IdentityConfig
	// GitHubKeys is a file or an https:// URL of GitHub's secret-scanning
	// public keys; empty: the partner endpoint is off.
	GitHubKeys string `name:"github-keys" env:"KEYMINT_GITHUB_KEYS" help:"GitHub secret-scanning public keys: a file or an https:// URL (https://api.github.com/meta/public_keys/secret_scanning); empty: the partner endpoint is off."`
	// GitHubKeysRefresh is how often the key list is fetched again.
	GitHubKeysRefresh time.Duration `name:"github-keys-refresh" env:"KEYMINT_GITHUB_KEYS_REFRESH" default:"1h" help:"How often the GitHub key list is fetched again."`
}

// problems lists what is wrong with the settings.
func (ic *IntegrationsConfig) problems() []string {
	out := ic.IdentityConfig.problems()
	if ic.GitHubKeysRefresh < time.Minute {
		out = append(out, "github-keys-refresh: want at least 1m")
	}
	if strings.HasPrefix(ic.GitHubKeys, "http://") {
		out = append(out, "github-keys: fetch the key list over https://, or give a file")
	}
	return out
}

// issuer is Issuer, or http:// and addr.
func (ic *IdentityConfig) issuer(addr string) string {
	if ic.Issuer != "" {
		return strings.TrimRight(ic.Issuer, "/")
	}
	return "http://" + addr
}

// githubKeySet loads GitHub's key list: a file must load now (a wrong path
// is a configuration error); a URL that fails is retried in the
// background, the endpoint answering 503 meanwhile.
func (ic *IntegrationsConfig) githubKeySet(ctx context.Context, log *slog.Logger) (*secretscan.KeySet, error) {
	ks := secretscan.NewKeySet(secretscan.KeySetConfig{Source: ic.GitHubKeys, Refresh: ic.GitHubKeysRefresh, Logger: log})
	if err := ks.Load(ctx); err != nil {
		if !strings.HasPrefix(ic.GitHubKeys, "https://") {
			return nil, err
		}
		log.Warn("github key list not loaded; the secret scanning endpoint answers 503 until it is", "err", err.Error())
	}
	return ks, nil
}

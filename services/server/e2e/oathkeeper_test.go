package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"sigs.k8s.io/yaml"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/introspect"
)

// oathkeeperConfig is the part of Oathkeeper's configuration the example
// sets, with Oathkeeper's key names; decoding refuses any other key, so a
// typo in the example fails here rather than in someone's gateway.
type oathkeeperConfig struct {
	Serve struct {
		Proxy struct {
			Port int `json:"port"`
		} `json:"proxy"`
		API struct {
			Port int `json:"port"`
		} `json:"api"`
	} `json:"serve"`
	AccessRules struct {
		Repositories []string `json:"repositories"`
	} `json:"access_rules"`
	Authenticators struct {
		OAuth2Introspection struct {
			Enabled bool `json:"enabled"`
			Config  struct {
				IntrospectionURL            string            `json:"introspection_url"`
				IntrospectionRequestHeaders map[string]string `json:"introspection_request_headers"`
				ScopeStrategy               string            `json:"scope_strategy"`
				TrustedIssuers              []string          `json:"trusted_issuers"`
				TokenFrom                   struct {
					Header string `json:"header"`
				} `json:"token_from"`
				Cache struct {
					Enabled bool `json:"enabled"`
				} `json:"cache"`
			} `json:"config"`
		} `json:"oauth2_introspection"`
	} `json:"authenticators"`
	Authorizers struct {
		Allow struct {
			Enabled bool `json:"enabled"`
		} `json:"allow"`
	} `json:"authorizers"`
	Mutators struct {
		Header struct {
			Enabled bool `json:"enabled"`
			Config  struct {
				Headers map[string]string `json:"headers"`
			} `json:"config"`
		} `json:"header"`
	} `json:"mutators"`
}

// oathkeeperRule is one access rule, as the example writes it.
type oathkeeperRule struct {
	ID       string `json:"id"`
	Upstream struct {
		URL string `json:"url"`
	} `json:"upstream"`
	Match struct {
		URL     string   `json:"url"`
		Methods []string `json:"methods"`
	} `json:"match"`
	Authenticators []struct {
		Handler string `json:"handler"`
		Config  struct {
			RequiredScope []string `json:"required_scope"`
		} `json:"config"`
	} `json:"authenticators"`
	Authorizer struct {
		Handler string `json:"handler"`
	} `json:"authorizer"`
	Mutators []struct {
		Handler string `json:"handler"`
	} `json:"mutators"`
}

// decodeStrict reads a YAML file into v, refusing unknown and duplicate keys.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestOathkeeperExample decodes deploy/oathkeeper strictly, then makes the
// introspection request Oathkeeper's oauth2_introspection authenticator
// makes for that configuration (ory/oathkeeper
// pipeline/authn/authenticator_oauth2_introspection.go: the form with
// token and, without a scope_strategy, scope; the configured headers;
// status 200 required; token_use, active, exp and trusted_issuers checked)
// against a live keymint.
func TestOathkeeperExample(t *testing.T) {
	t.Parallel()
	var cfg oathkeeperConfig
	decodeStrict(t, "../../../deploy/oathkeeper/oathkeeper.yml", &cfg)
	var rules []oathkeeperRule
	decodeStrict(t, "../../../deploy/oathkeeper/access-rules.yml", &rules)
	ac := cfg.Authenticators.OAuth2Introspection
	if !ac.Enabled || ac.Config.ScopeStrategy != "" || ac.Config.Cache.Enabled || len(rules) != 1 ||
		rules[0].Authenticators[0].Handler != "oauth2_introspection" {
		t.Fatalf("the example changed shape: %+v %+v", ac, rules)
	}
	u, err := url.Parse(ac.Config.IntrospectionURL)
	if err != nil || u.Path != introspect.Path {
		t.Fatalf("introspection_url %q: want a URL ending in %s", ac.Config.IntrospectionURL, introspect.Path)
	}
	scopes := rules[0].Authenticators[0].Config.RequiredScope

	kc := testConfig(t)
	kc.Integrations.Issuer = ac.Config.TrustedIssuers[0]
	const email, pw = "ok@example.com", "oathkeeper test password"
	createUser(t, kc, email, "ok-org", pw, false)
	srv := startServer(t, kc)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	mint := func(scopes ...string) *keymintv1.CreateTokenResponse {
		r, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "t", Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	caller := mint(introspect.CallerScope).Secret
	// The example's placeholder, filled as its comment says.
	headers := map[string]string{}
	for k, v := range ac.Config.IntrospectionRequestHeaders {
		if strings.Contains(v, "REPLACE_WITH_BASE64") {
			v = "Basic " + base64.StdEncoding.EncodeToString([]byte("oathkeeper:"+caller))
		}
		headers[k] = v
	}
	endpoint := srv.http + u.Path

	// oathkeeper replays Oathkeeper's request and decisions; it returns
	// the subject on success, "" on a deny.
	oathkeeper := func(token string) string {
		body := url.Values{"token": {token}}
		body.Add("scope", strings.Join(scopes, " "))
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body.Encode()))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("introspection answered %d; Oathkeeper needs 200", resp.StatusCode)
		}
		// Oathkeeper's AuthenticatorOAuth2IntrospectionResult.
		var i struct {
			Active   bool   `json:"active"`
			Subject  string `json:"sub"`
			Issuer   string `json:"iss"`
			Expires  int64  `json:"exp"`
			TokenUse string `json:"token_use"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&i); err != nil {
			t.Fatal(err)
		}
		if i.TokenUse != "" && i.TokenUse != "access_token" || !i.Active ||
			i.Expires > 0 && time.Unix(i.Expires, 0).Before(time.Now()) || !slices.Contains(ac.Config.TrustedIssuers, i.Issuer) {
			return ""
		}
		return i.Subject
	}
	good, noScope, revoked := mint(scopes...), mint("other:scope"), mint(scopes...)
	if _, err := srv.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	if got := oathkeeper(good.Secret); got != good.Token.UserId {
		t.Fatalf("good token: subject %q, want %q", got, good.Token.UserId)
	}
	for name, s := range map[string]string{"no scope": noScope.Secret, "revoked": revoked.Secret, "garbage": "km_x"} {
		if got := oathkeeper(s); got != "" {
			t.Fatalf("%s: allowed as %q", name, got)
		}
	}
}

package deploy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/sidecar"
)

// directive is one nginx directive, with its block if it has one.
type directive struct {
	args  []string
	block []*directive
}

// parseNginx parses nginx configuration syntax: words and quoted strings,
// ';'-terminated directives, '{}' blocks, '#' comments.
func parseNginx(src string) ([]*directive, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, errors.New("unterminated string")
			}
			toks = append(toks, src[i:j+1])
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}#", rune(src[j])) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	var parse func(depth int) ([]*directive, error)
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		var cur []string
		for len(toks) > 0 {
			tok := toks[0]
			toks = toks[1:]
			switch tok {
			case ";":
				if len(cur) == 0 {
					return nil, errors.New("empty directive")
				}
				out = append(out, &directive{args: cur})
				cur = nil
			case "{":
				if len(cur) == 0 {
					return nil, errors.New("block without a name")
				}
				block, err := parse(depth + 1)
				if err != nil {
					return nil, err
				}
				out = append(out, &directive{args: cur, block: block})
				cur = nil
			case "}":
				if depth == 0 || len(cur) > 0 {
					return nil, errors.New("unexpected }")
				}
				return out, nil
			default:
				cur = append(cur, tok)
			}
		}
		if depth > 0 || len(cur) > 0 {
			return nil, errors.New("unexpected end of file")
		}
		return out, nil
	}
	return parse(0)
}

// find returns the directives in ds whose words start with prefix.
func find(ds []*directive, prefix ...string) []*directive {
	var out []*directive
	for _, d := range ds {
		if len(d.args) >= len(prefix) && slices.Equal(d.args[:len(prefix)], prefix) {
			out = append(out, d)
		}
	}
	return out
}

// checkNginxAuthRequest checks an nginx server that puts keymint's
// forward-auth (at keymintURL) in front of everything it proxies.
func checkNginxAuthRequest(t *testing.T, data []byte, keymintURL string) {
	t.Helper()
	top, err := parseNginx(string(data))
	if err != nil {
		t.Fatalf("nginx: %v", err)
	}
	servers := find(top, "server")
	if len(servers) != 1 {
		t.Fatalf("nginx: %d server blocks, want 1", len(servers))
	}
	srv := servers[0].block
	need := func(where string, ds []*directive, args ...string) {
		t.Helper()
		for _, d := range ds {
			if slices.Equal(d.args, args) {
				return
			}
		}
		t.Errorf("nginx: %s lacks %q", where, strings.Join(args, " ")+";")
	}

	auth := find(srv, "location", "=", "/_keymint")
	if len(auth) != 1 || auth[0].block == nil {
		t.Fatal("nginx: no `location = /_keymint { ... }`")
	}
	a := auth[0].block
	need("location = /_keymint", a, "internal")
	need("location = /_keymint", a, "proxy_pass", keymintURL)
	need("location = /_keymint", a, "proxy_pass_request_body", "off")
	need("location = /_keymint", a, "proxy_set_header", "Content-Length", `""`)
	need("location = /_keymint", a, "proxy_set_header", "X-Original-URI", "$request_uri")
	need("location = /_keymint", a, "proxy_set_header", "X-Original-Method", "$request_method")
	need("location = /_keymint", a, "proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for")
	// Another proxy's headers, which a client could send, never reach keymint.
	for _, h := range []string{"X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Host"} {
		need("location = /_keymint", a, "proxy_set_header", h, `""`)
	}

	// Every other location that proxies asks keymint first, hands every
	// identity header on (overwriting the client's) and drops the token.
	proxied := 0
	for _, loc := range find(srv, "location") {
		if loc == auth[0] || loc.block == nil || len(find(loc.block, "proxy_pass")) == 0 {
			continue
		}
		proxied++
		where := "location " + strings.Join(loc.args[1:], " ")
		l := loc.block
		need(where, l, "auth_request", "/_keymint")
		for v, h := range map[string][2]string{
			"user":     {"user_id", "X-Keymint-User-Id"},
			"org":      {"org_id", "X-Keymint-Org-Id"},
			"token":    {"token_id", "X-Keymint-Token-Id"},
			"scopes":   {"scopes", "X-Keymint-Scopes"},
			"external": {"external_id", "X-Keymint-External-Id"},
		} {
			need(where, l, "auth_request_set", "$keymint_"+v, "$upstream_http_x_keymint_"+h[0])
			need(where, l, "proxy_set_header", h[1], "$keymint_"+v)
		}
		if n := len(find(l, "auth_request_set")) - 4; n != len(sidecar.IdentityHeaders) {
			t.Errorf("nginx: %s copies %d identity headers, keymint sends %d", where, n, len(sidecar.IdentityHeaders))
		}
		need(where, l, "auth_request_set", "$keymint_status", "$upstream_status")
		need(where, l, "auth_request_set", "$keymint_reason", "$upstream_http_x_keymint_reason")
		need(where, l, "auth_request_set", "$keymint_retry_after", "$upstream_http_retry_after")
		need(where, l, "proxy_set_header", "Authorization", `""`)
	}
	if proxied == 0 {
		t.Error("nginx: no location proxies to the app")
	}
	// Refusals keep keymint's status and reason: 401 and 403 as
	// auth_request passes them, the rest (429, 400, keymint down) as a 500.
	for code, ret := range map[string]string{"401": "401", "403": "403", "500": "429"} {
		pages := find(srv, "error_page", code, "=")
		if len(pages) != 1 || len(pages[0].args) != 4 {
			t.Errorf("nginx: want `error_page %s = @name;`", code)
			continue
		}
		named := find(srv, "location", pages[0].args[3])
		if len(named) != 1 {
			t.Errorf("nginx: no location %s", pages[0].args[3])
			continue
		}
		body := named[0].block
		for _, d := range find(body, "if") {
			body = append(body, d.block...)
		}
		if len(find(body, "return", ret, "$keymint_reason")) != 1 {
			t.Errorf("nginx: location %s must return %s $keymint_reason", pages[0].args[3], ret)
		}
	}
}

func TestNginxConfigs(t *testing.T) {
	t.Parallel()
	for path, url := range map[string]string{
		"compose/nginx.conf": "http://keymint:8080/v1/forward-auth",
		kubeDir + "/examples/nginx-auth-request/default.conf": "http://keymint.keymint.svc:8080/v1/forward-auth",
	} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkNginxAuthRequest(t, data, url)
		})
	}
	// The parser itself refuses broken syntax.
	if _, err := parseNginx("server { location / { proxy_pass http://x; }"); err == nil {
		t.Error("parseNginx accepted an unclosed block")
	}
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server/servertest"
	"github.com/keymint/keymint/services/sidecar"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The proxy tests run real nginx and real Caddy on the configurations
// shipped in deploy/, changed only in the addresses they listen on and
// proxy to, in front of keymint and an upstream that echoes what it got.
// Clients connect from 127.0.0.2; the proxies reach keymint from 127.0.0.1,
// the one address keymint trusts for X-Forwarded-For.

// proxyClientIP is the address the tests' clients connect from.
const proxyClientIP = "127.0.0.2"

// proxyFixture is keymint (route GET /reports → reports:read, matched
// ignoring case, default forward-auth style) with its tokens.
type proxyFixture struct {
	srv                 *testServer
	userID, orgID       string
	good, goodID        string // reports:read, external id "ext-42"
	noScope, revoked    string
	onlyDoc, onlyClient string // reports:read, allowed from 203.0.113.5 / from proxyClientIP only
	mint                func(t *testing.T, r *keymintv1.CreateTokenRequest) *keymintv1.CreateTokenResponse
	upstream            *httptest.Server
	rawDialer           *net.Dialer
}

func newProxyFixture(t *testing.T) *proxyFixture {
	t.Helper()
	cfg := testConfig(t)
	cfg.Routes = []string{"GET /reports=reports:read"}
	cfg.RoutesIgnoreCase = true
	cfg.Abuse.TrustedProxies = "127.0.0.1/32"
	const email, pw = "proxy@example.com", "proxy test password"
	createUser(t, cfg, email, "proxy-org", pw, false)
	fx := &proxyFixture{srv: startServer(t, cfg)}
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	fx.mint = func(t *testing.T, r *keymintv1.CreateTokenRequest) *keymintv1.CreateTokenResponse {
		t.Helper()
		resp, err := fx.srv.client.CreateToken(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	good := fx.mint(t, &keymintv1.CreateTokenRequest{Name: "good", Scopes: []string{"reports:read"}, ExternalId: "ext-42"})
	fx.good, fx.goodID, fx.userID, fx.orgID = good.Secret, good.Token.Id, good.Token.UserId, good.Token.OrganizationId
	fx.noScope = fx.mint(t, &keymintv1.CreateTokenRequest{Name: "noscope"}).Secret
	revoked := fx.mint(t, &keymintv1.CreateTokenRequest{Name: "revoked", Scopes: []string{"reports:read"}})
	if _, err := fx.srv.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	fx.revoked = revoked.Secret
	fx.onlyDoc = fx.mint(t, &keymintv1.CreateTokenRequest{Name: "doc", Scopes: []string{"reports:read"}, AllowedCidrs: []string{"203.0.113.5/32"}}).Secret
	fx.onlyClient = fx.mint(t, &keymintv1.CreateTokenRequest{Name: "client", Scopes: []string{"reports:read"}, AllowedCidrs: []string{proxyClientIP + "/32"}}).Secret

	fx.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "1")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Header: r.Header})
	}))
	t.Cleanup(fx.upstream.Close)
	fx.rawDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyClientIP)}, Timeout: 10 * time.Second}
	return fx
}

// echoed is what the upstream saw.
type echoed struct {
	Method string
	URI    string
	Header http.Header
}

// proxied is one response through a proxy.
type proxied struct {
	status int
	header http.Header
	body   []byte
	echo   *echoed // nil unless the upstream answered
}

// do sends one request to the proxy at addr from proxyClientIP, written by
// hand so the request target goes out exactly as given. Every request
// carries spoofed identity headers.
func (fx *proxyFixture) do(t *testing.T, addr, method, target, token string, extra ...string) proxied {
	t.Helper()
	c, err := fx.rawDialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n", method, target)
	for _, h := range sidecar.IdentityHeaders {
		fmt.Fprintf(&b, "%s: spoofed\r\n", h)
	}
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", extra[i], extra[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := proxied{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.Header.Get("X-Echo") == "1" {
		p.echo = &echoed{Method: method}
		if method != "HEAD" {
			p.echo = &echoed{}
			if err := json.Unmarshal(body, p.echo); err != nil {
				t.Fatalf("echo body %q: %v", body, err)
			}
		}
	}
	return p
}

// checkProxy runs every check against one proxy at addr.
func (fx *proxyFixture) checkProxy(t *testing.T, addr string) {
	denied := func(t *testing.T, what string, p proxied, status int, code string) {
		t.Helper()
		if p.status != status || p.echo != nil {
			t.Errorf("%s: %d (upstream reached: %v) %s, want %d", what, p.status, p.echo != nil, p.body, status)
			return
		}
		var body map[string]string
		if err := json.Unmarshal(p.body, &body); err != nil || body["error"] != code || body["message"] == "" {
			t.Errorf("%s: body %q, want JSON error %q", what, p.body, code)
		}
		if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if (status == 401 || status == 403) && len(p.header.Values("WWW-Authenticate")) != 1 {
			t.Errorf("%s: WWW-Authenticate %q, want keymint's one challenge", what, p.header.Values("WWW-Authenticate"))
		}
	}
	allowed := func(t *testing.T, what string, p proxied) *echoed {
		t.Helper()
		if p.status != 200 || p.echo == nil {
			t.Fatalf("%s: %d %s, want 200 from the upstream", what, p.status, p.body)
		}
		if v := p.echo.Header.Values("Authorization"); len(v) > 0 {
			t.Errorf("%s: the upstream got the token", what)
		}
		for _, h := range sidecar.IdentityHeaders {
			for _, v := range p.echo.Header.Values(h) {
				if strings.Contains(v, "spoofed") || v == "admin" {
					t.Errorf("%s: the upstream got the client's %s: %q", what, h, v)
				}
			}
		}
		return p.echo
	}

	t.Run("no token", func(t *testing.T) {
		denied(t, "no token", fx.do(t, addr, "GET", "/reports", ""), 401, "missing_token")
	})
	t.Run("revoked", func(t *testing.T) {
		denied(t, "revoked", fx.do(t, addr, "GET", "/reports", fx.revoked), 401, "invalid_token")
	})
	t.Run("missing scope", func(t *testing.T) {
		denied(t, "missing scope", fx.do(t, addr, "GET", "/reports/2026", fx.noScope), 403, "insufficient_scope")
	})
	t.Run("allowed with identity", func(t *testing.T) {
		e := allowed(t, "good", fx.do(t, addr, "GET", "/reports/2026?x=1", fx.good))
		want := map[string]string{
			"X-Keymint-Token-Id": fx.goodID, "X-Keymint-User-Id": fx.userID, "X-Keymint-Org-Id": fx.orgID,
			"X-Keymint-Scopes": "reports:read", "X-Keymint-External-Id": "ext-42",
		}
		for h, v := range want {
			if got := e.Header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want %q", h, got, v)
			}
		}
		if e.URI != "/reports/2026?x=1" {
			t.Errorf("upstream URI %q", e.URI)
		}
		// Unset values (no scopes, no external id): the client's copies
		// are gone, not kept.
		e = allowed(t, "no scope, open route", fx.do(t, addr, "GET", "/other", fx.noScope))
		for _, h := range []string{"X-Keymint-Scopes", "X-Keymint-External-Id"} {
			if v := e.Header.Get(h); v != "" {
				t.Errorf("upstream %s = %q, want empty or absent", h, v)
			}
		}
	})
	t.Run("HEAD needs the GET scope", func(t *testing.T) {
		if p := fx.do(t, addr, "HEAD", "/reports", fx.noScope); p.status != 403 || p.echo != nil {
			t.Errorf("HEAD without scope: %d, reached %v", p.status, p.echo != nil)
		}
		if p := fx.do(t, addr, "HEAD", "/reports", fx.good); p.status != 200 || p.echo == nil {
			t.Errorf("HEAD with scope: %d, reached %v", p.status, p.echo != nil)
		}
	})
	t.Run("X-Forwarded-For not believed", func(t *testing.T) {
		// The client claims the address onlyDoc is allowed from: keymint
		// sees the connection's address, which the proxy appended.
		denied(t, "spoofed XFF", fx.do(t, addr, "GET", "/reports", fx.onlyDoc, "X-Forwarded-For", "203.0.113.5"), 403, "ip_not_allowed")
		allowed(t, "real client", fx.do(t, addr, "GET", "/reports", fx.onlyClient, "X-Forwarded-For", "203.0.113.5"))
	})
	t.Run("other proxies' headers not believed", func(t *testing.T) {
		for _, h := range [][]string{
			{"X-Forwarded-Uri", "/other", "X-Forwarded-Method", "POST"},
			{"X-Original-URI", "/other", "X-Original-Method", "POST"},
		} {
			p := fx.do(t, addr, "GET", "/reports", fx.noScope, h...)
			if p.status == 200 || p.echo != nil || p.status < 400 || p.status >= 500 {
				t.Errorf("client's %v: %d, reached %v; want a 4xx refusal", h, p.status, p.echo != nil)
			}
		}
	})
	t.Run("tricky paths", func(t *testing.T) {
		for _, target := range []string{
			"/reports", "/reports/", "/reports.", "/reports.json", "/reports;jsessionid=1", "/reports;/1",
			"/REPORTS", "/Reports/1", "//reports", "/x/../reports", "/%72eports", "/reports%2F1", "/reports?x=1",
			"/x;/../reports", "http://other.example/reports",
		} {
			p := fx.do(t, addr, "GET", target, fx.noScope)
			if p.echo != nil || (p.status != 403 && p.status != 400) {
				t.Errorf("%s without the scope: %d, reached %v", target, p.status, p.echo != nil)
			}
			if p.status == 400 {
				continue // the proxy itself refuses this spelling
			}
			if p := fx.do(t, addr, "GET", target, fx.good); p.echo == nil {
				t.Errorf("%s with the scope: %d %s", target, p.status, p.body)
			}
		}
		// Paths keymint refuses to match at all.
		for _, target := range []string{"/reports%00", "/%c0%afreports", "/reports%0d%0aX:1"} {
			if p := fx.do(t, addr, "GET", target, fx.good); p.status != 400 || p.echo != nil {
				t.Errorf("%s: %d %s, reached %v; want 400", target, p.status, p.body, p.echo != nil)
			}
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		rl := fx.mint(t, &keymintv1.CreateTokenRequest{Name: "rl", RateLimit: &keymintv1.RateLimit{Limit: 1, Period: durationpb.New(time.Hour)}}).Secret
		allowed(t, "first use", fx.do(t, addr, "GET", "/other", rl))
		p := fx.do(t, addr, "GET", "/other", rl)
		denied(t, "second use", p, 429, "rate_limited")
		if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
			t.Errorf("429 Retry-After %q", p.header.Get("Retry-After"))
		}
	})
}

// TestProxiesAsShipped runs nginx (both shipped configurations) and Caddy in
// front of one keymint, then stops keymint: every proxy must fail closed.
func TestProxiesAsShipped(t *testing.T) {
	t.Parallel()
	nginxBin := findBinary(t, "nginx", "/usr/sbin/nginx")
	caddyBin := findBinary(t, "caddy", "/usr/bin/caddy")
	fx := newProxyFixture(t)
	km := strings.TrimPrefix(fx.srv.http, "http://")
	app := strings.TrimPrefix(fx.upstream.URL, "http://")
	root := filepath.Join("..", "..", "..", "deploy")
	proxies := []struct{ name, addr string }{
		{"nginx compose", startNginx(t, nginxBin, filepath.Join(root, "compose", "nginx.conf"), map[string]string{
			"server echo:8080;":                   "server " + app + ";",
			"http://keymint:8080/v1/forward-auth": "http://" + km + "/v1/forward-auth",
		})},
		{"nginx kubernetes", startNginx(t, nginxBin, filepath.Join(root, "kubernetes", "examples", "nginx-auth-request", "default.conf"), map[string]string{
			"server 127.0.0.1:5678;":                          "server " + app + ";",
			"http://keymint.keymint.svc:8080/v1/forward-auth": "http://" + km + "/v1/forward-auth",
		})},
		{"caddy", startCaddy(t, caddyBin, filepath.Join(root, "caddy", "Caddyfile"), km, app)},
	}
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) { fx.checkProxy(t, p.addr) })
	}
	// keymint down: refused with a 5xx, the upstream never reached.
	fx.srv.stop()
	for _, p := range proxies {
		r := fx.do(t, p.addr, "GET", "/reports", fx.good)
		if r.status < 500 || r.echo != nil {
			t.Errorf("%s with keymint down: %d %s, reached %v; want a 5xx", p.name, r.status, r.body, r.echo != nil)
		}
	}
}

// findBinary finds a proxy binary, failing under KEYMINT_TEST_REQUIRE_SERVICES.
func findBinary(t *testing.T, name, fallback string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	if os.Getenv("KEYMINT_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is not installed (scripts/install-deps.sh installs it)", name)
	}
	t.Skipf("%s is not installed; run make test", name)
	return ""
}

// startNginx runs nginx on a shipped server configuration with each of
// subst replaced exactly once and its listen port changed, and returns its
// address.
func startNginx(t *testing.T, bin, conf string, subst map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	port := servertest.FreePort(t)
	subst["listen 8080;"] = fmt.Sprintf("listen 127.0.0.1:%d;", port)
	text := string(data)
	for from, to := range subst {
		if n := strings.Count(text, from); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want once (the test changes only addresses)", conf, from, n)
		}
		text = strings.Replace(text, from, to, 1)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.conf"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  include %[1]s/default.conf;
}
`, dir)
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t %s: %v\n%s", conf, err, out)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", mainPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if b, _ := os.ReadFile(filepath.Join(dir, "error.log")); t.Failed() && len(b) > 0 {
			t.Logf("nginx %s error.log:\n%s", conf, b)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	servertest.WaitListening(t, addr)
	return addr
}

// startCaddy runs Caddy on the shipped Caddyfile, as it is: the addresses
// come from the environment variables the file reads.
func startCaddy(t *testing.T, bin, conf, keymintAddr, appAddr string) string {
	t.Helper()
	dir := t.TempDir()
	port := servertest.FreePort(t)
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"LISTEN_PORT="+strconv.Itoa(port), "BIND_ADDR=127.0.0.1", "AUTH_UPSTREAM="+keymintAddr, "APP_UPSTREAM="+appAddr)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	servertest.WaitListening(t, addr)
	return addr
}

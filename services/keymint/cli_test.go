package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/server/servertest"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tlsfiles/tlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Flag and environment errors come all at once, one line each, with no
// usage text: unknown flags, values that do not parse, and what Validate
// refuses. Go-flag style single-dash long flags still work.
func TestCLIErrorsAllAtOnce(t *testing.T) {
	t.Setenv("KEYMINT_CACHE_L1_SIZE", "many")
	t.Setenv("KEYMINT_ROUTES_IGNORE_CASE", "perhaps")
	var out, errOut bytes.Buffer
	err := realMain(context.Background(), []string{"serve", "--bogus-flag", "--also-bogus=1", "--shutdown-timeout", "soon",
		"-log-format", "xml", "--data-dir", t.TempDir()}, strings.NewReader(""), &out, &errOut)
	if err == nil {
		t.Fatal("serve started with bad flags")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{"unknown flag --bogus-flag", "unknown flag --also-bogus", "--shutdown-timeout (KEYMINT_SHUTDOWN_TIMEOUT)",
		"--cache-l1-size (KEYMINT_CACHE_L1_SIZE)", "--routes-ignore-case (KEYMINT_ROUTES_IGNORE_CASE)", `log-format "xml"`} {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines mention %q, want 1:\n%v", n, want, err)
		}
	}
	// A value that did not parse keeps its default: not reported twice.
	if strings.Contains(err.Error(), "shutdown-timeout: want a positive") {
		t.Errorf("a bad duration reported twice:\n%v", err)
	}
	if strings.Contains(out.String()+errOut.String(), "Usage") {
		t.Errorf("usage printed on error:\n%s%s", out.String(), errOut.String())
	}
}

// --help on every command (and the top) answers on stdout and succeeds.
func TestCLIHelpEveryCommand(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{}, {"serve"}, {"gateway"}, {"sidecar"}, {"migrate"}, {"user"}, {"user", "create"},
		{"webhook"}, {"webhook", "create"}, {"webhook", "list"}, {"webhook", "delete"}, {"webhook", "deliveries"},
		{"webhook", "replay"}, {"healthcheck"}, {"version"}, {"install-completions"}} {
		var out bytes.Buffer
		if err := realMain(context.Background(), append(cmd, "--help"), strings.NewReader(""), &out, &out); err != nil {
			t.Errorf("keymint %v --help: %v", cmd, err)
		}
		if want := strings.TrimSpace("Usage: keymint " + strings.Join(cmd, " ")); !strings.Contains(out.String(), want) {
			t.Errorf("keymint %v --help printed no %q:\n%s", cmd, want, out.String())
		}
	}
}

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := realMain(context.Background(), []string{"version"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^keymint \S+\ncommit \S+\n` + regexp.QuoteMeta(runtime.Version()) + ` `).MatchString(out.String()) {
		t.Errorf("version output:\n%s", out.String())
	}
}

// serve --banner prints the addresses it bound, not the defaults.
func TestServeBannerAddresses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	banner := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"serve", "--banner", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--argon2-memory-kib", "64", "--argon2-time", "1"}, strings.NewReader(""), banner, &syncBuffer{})
	}()
	re := regexp.MustCompile(`serving REST http://127\.0\.0\.1:(\d+), gRPC 127\.0\.0\.1:(\d+)`)
	var m []string
	for m == nil {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		m = re.FindStringSubmatch(banner.String())
	}
	if m[1] == "8080" || m[2] == "9090" || m[1] == "0" || m[2] == "0" {
		t.Errorf("banner shows the configured, not the bound, ports: %s", m[0])
	}
	waitReady(t, "http://127.0.0.1:"+m[1])
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// keymint gateway dials a gRPC port that requires mTLS with the
// --grpc-endpoint-* files, as the sidecar does; without a client
// certificate its REST calls fail.
func TestGatewayMTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "keymint-test-ca")
	caFile := ca.WriteCert(t, dir, "ca.crt")
	srvCert, srvKey := ca.Issue(t, dir, "keymint.test", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, dir, "gateway.test", x509.ExtKeyUsageClientAuth)
	cfg := testConfig(t)
	cfg.TLSClientCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = caFile, srvCert, srvKey
	const email, pw = "gw@example.com", "gateway tls password"
	createUser(t, cfg, email, "gw-org", pw, false)
	central := startServer(t, cfg)

	clientTLS, err := tlsfiles.Client(tlsfiles.Files{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey}, "keymint.test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(central.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	minted, err := keymintv1.NewTokenServiceClient(conn).CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "via-gateway"})
	if err != nil {
		t.Fatal(err)
	}

	runGateway := func(extra ...string) string {
		addr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
		gctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- realMain(gctx, append([]string{"gateway", "--http-addr", addr, "--grpc-endpoint", central.GRPCAddr,
				"--grpc-endpoint-server-name", "keymint.test", "--grpc-endpoint-ca-file", caFile}, extra...),
				strings.NewReader(""), &syncBuffer{}, &syncBuffer{})
		}()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		})
		return "http://" + addr
	}
	gw := runGateway("--grpc-endpoint-cert-file", cliCert, "--grpc-endpoint-key-file", cliKey)
	waitReady(t, gw)
	var v map[string]any
	if code, body := do(t, "POST", gw+"/v1/tokens:validate", nil, `{"token":"`+minted.Secret+`"}`, &v); code != http.StatusOK || v["valid"] != true {
		t.Fatalf("validate through the mTLS gateway: %d %s", code, body)
	}

	noCert := runGateway()
	servertest.WaitListening(t, strings.TrimPrefix(noCert, "http://"))
	if code, body := do(t, "POST", noCert+"/v1/tokens:validate", nil, `{"token":"`+minted.Secret+`"}`, nil); code == http.StatusOK {
		t.Fatalf("a gateway without a client certificate got through: %d %s", code, body)
	}
}

// TestServingCommands: kong's name for each long-running command is the one
// serving knows, so they run with kong's model dropped (main.go); were a
// kong upgrade to name them otherwise, they would still run, through
// kctx.Run, and keep the model live.
func TestServingCommands(t *testing.T) {
	args := map[string][]string{"sidecar": {"--central-addr", "127.0.0.1:1"}}
	for cmd, want := range map[string]func(*cli) any{
		"serve":   func(c *cli) any { return &c.Serve },
		"gateway": func(c *cli) any { return &c.Gateway },
		"sidecar": func(c *cli) any { return &c.Sidecar },
		"migrate": func(*cli) any { return nil },
	} {
		var c cli
		parser, err := kong.New(&c, kong.Vars(server.Defaults()), kong.Exit(func(int) { t.Fatalf("%s: kong exited", cmd) }))
		if err != nil {
			t.Fatal(err)
		}
		kctx, err := parser.Parse(append([]string{cmd}, args[cmd]...))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		got := serving(&c, kctx.Command())
		if w := want(&c); w == nil {
			if got != nil {
				t.Errorf("%s: serving picked %T, want none", cmd, got)
			}
		} else if got != w {
			t.Errorf("%s (kong: %q): serving picked %v, want the command's own", cmd, kctx.Command(), got)
		}
	}
}

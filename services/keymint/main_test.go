package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/keymint/keymint/services/hashworker"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/server/servertest"
)

// The tests of this package are of the commands' wiring: flags, output,
// exit codes. The server's own behaviour is tested black-box in
// services/server/e2e; the servers these tests talk to are servertest's.

// TestMain lets a test run this package's test binary as the keymint binary
// itself (KEYMINT_TEST_MAIN=1, runBinary).
func TestMain(m *testing.M) {
	// serve's hashing worker is this binary re-executed, as in production.
	hashworker.Dispatch()
	if os.Getenv("KEYMINT_TEST_MAIN") == "1" {
		if err := realMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "keymint:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer collects a command's output while it runs.
type syncBuffer = servertest.LogBuffer

// testConfig is a serve configuration on ephemeral ports with cheap argon2.
func testConfig(t testing.TB) server.Config { return servertest.Config(t) }

// startServer runs a server on cfg until t ends.
func startServer(t testing.TB, cfg server.Config) *servertest.Server {
	t.Helper()
	return servertest.Start(t, cfg, nil)
}

func waitReady(t testing.TB, base string) { servertest.WaitReady(t, base) }

func do(t *testing.T, method, url string, headers map[string]string, body string, out any) (int, string) {
	t.Helper()
	return servertest.Do(t, method, url, headers, body, out)
}

// runServe, runSidecar and runHealthcheck run the command as the binary
// would, with args after the command's name.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"serve"}, args...), strings.NewReader(""), io.Discard, stderr)
}

func runSidecar(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"sidecar"}, args...), strings.NewReader(""), io.Discard, stderr)
}

func runHealthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"healthcheck"}, args...), strings.NewReader(""), io.Discard, stderr)
}

// createUser runs `keymint user create` against cfg's store.
func createUser(t testing.TB, cfg server.Config, email, org, password string, admin bool) {
	t.Helper()
	args := []string{"user", "create", "--email", email, "--org", org, "--password-stdin",
		"--data-dir", cfg.DataDir, "--argon2-memory-kib", "64", "--argon2-time", "1", "--log-format", "text"}
	if cfg.DatabaseURL != "" {
		args = append(args, "--database-url", cfg.DatabaseURL)
	}
	if admin {
		args = append(args, "--admin")
	}
	var out, errOut bytes.Buffer
	if err := realMain(context.Background(), args, strings.NewReader(password+"\n"), &out, &errOut); err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), password) {
		t.Fatal("user create printed the password")
	}
}

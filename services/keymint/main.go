// Command keymint is the one keymint binary: serve (gRPC + REST), gateway
// (REST only, in front of a remote gRPC server), migrate and user management.
// This package only wires the others together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `keymint mints one-time-revealed API tokens and validates them.

Usage:
  keymint serve      [flags]   gRPC API and REST gateway (the default setup)
  keymint gateway    [flags]   REST gateway only, in front of a keymint gRPC server
  keymint sidecar    [flags]   ext_authz + forward-auth next to a resource service
  keymint migrate    [flags]   apply database migrations and exit
  keymint user create --email E --org NAME [--admin] --password-stdin [flags]
  keymint healthcheck [flags]   exit 0 if the keymint on --http-addr is ready (container healthchecks)
  keymint webhook create|list|delete|deliveries|replay --org NAME [flags]

Every flag has an environment variable (KEYMINT_ + the flag in upper case,
dashes as underscores). Run 'keymint COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "keymint:", err)
		}
		os.Exit(2)
	}
}

func realMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "gateway":
		return runGateway(ctx, args[1:], stderr)
	case "sidecar":
		return runSidecar(ctx, args[1:], stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "user":
		if len(args) < 2 || args[1] != "create" {
			return errors.New("usage: keymint user create --email E --org NAME [--admin] --password-stdin")
		}
		return runUserCreate(ctx, args[2:], stdin, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stderr)
	case "webhook":
		return runWebhook(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

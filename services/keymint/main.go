// Command keymint is the one keymint binary: serve (gRPC + REST), gateway
// (REST only, in front of a remote gRPC server), sidecar, migrate, and the
// operator commands that work on the store directly. This package only
// wires the others together: one file per command, each a struct whose
// fields are its flags (kong binds them, with their environment
// variables); services/DESIGN.md says how to add one.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/keymint/keymint/services/hashworker"
	"github.com/keymint/keymint/services/server"
)

// cli is every command; kong picks one from the arguments.
type cli struct {
	Serve          serveCmd          `cmd:"" help:"gRPC API and REST gateway (the default setup)."`
	Gateway        gatewayCmd        `cmd:"" help:"REST gateway only, in front of a keymint gRPC server."`
	Sidecar        sidecarCmd        `cmd:"" help:"ext_authz + forward-auth next to a resource service."`
	Migrate        migrateCmd        `cmd:"" help:"Apply database migrations and exit."`
	User           userCmd           `cmd:"" help:"Manage users (create: on the store directly; the rest: on a running server, as an admin)."`
	ServiceAccount serviceAccountCmd `cmd:"" name:"service-account" help:"Manage service accounts on a running server, as an admin."`
	Token          tokenCmd          `cmd:"" help:"Mint, list, revoke and rotate tokens on a running server."`
	Org            orgCmd            `cmd:"" help:"Show organizations on a running server, as an admin."`
	Webhook        webhookCmd        `cmd:"" help:"Manage an organization's webhooks on the store directly."`
	Healthcheck    healthcheckCmd    `cmd:"" help:"Exit 0 if the keymint on --http-addr is ready (container healthchecks)."`
	Version        versionCmd        `cmd:"" help:"Print the version, commit and Go version."`
	// Completion: bash also works with complete -C keymint keymint.
	Completion kongplete.InstallCompletions `cmd:"" name:"install-completions" help:"Install shell completion for bash, zsh or fish."`
}

// cliEnv is what every command's Run gets.
type cliEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

const description = `keymint mints one-time-revealed API tokens and validates them.

Every flag has an environment variable (KEYMINT_ + the flag in upper case,
dashes as underscores), shown in each command's --help.`

func main() {
	// The password hashing worker is this binary re-executed.
	hashworker.Dispatch()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keymint:", err)
		os.Exit(2)
	}
}

// exited is the panic value of kong's exit hook: --help and completion
// end parsing with it, and realMain turns it back into a return.
type exited struct{ code int }

func realMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	var values valueProblems
	var c cli
	parser, err := kong.New(&c,
		kong.Name("keymint"),
		kong.Description(description),
		kong.Vars(server.Defaults()),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exited{code}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		values.mappers(),
	)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exited)
			if !ok {
				panic(r)
			}
			if e.code != 0 {
				err = fmt.Errorf("exit status %d", e.code)
			}
		}
	}()
	kongplete.Complete(parser, kongplete.WithExitFunc(func(code int) { panic(exited{code}) }))
	if len(args) == 0 {
		return errors.New("missing command: run 'keymint --help' for the list")
	}
	kctx, err := parse(parser, args, &values)
	if err != nil {
		return err
	}
	env := &cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if cmd := serving(&c, kctx.Command()); cmd != nil {
		// Not through kctx.Run: kong's model of every command (some 5,000
		// objects) would stay reachable from its frames for as long as
		// the server runs, and the collector marks all of it on every
		// cycle. Dropped here, it is garbage by the first (README,
		// Performance: the mark is what a validation's p99 waits on).
		return cmd.Run(env)
	}
	return kctx.Run(env)
}

// serving is the command of c that serves until the process ends (serve,
// gateway, sidecar), when kong selected one, else nil. They sit at the top
// of the tree with no parent's Run to call, so calling theirs is all
// kctx.Run would do.
func serving(c *cli, command string) interface{ Run(*cliEnv) error } {
	switch command {
	case "serve":
		return &c.Serve
	case "gateway":
		return &c.Gateway
	case "sidecar":
		return &c.Sidecar
	}
	return nil
}

package main

import (
	"fmt"
	"net"
	"os"

	"github.com/keymint/keymint/services/server"
)

// serveCmd is `keymint serve`: the server (services/server) on its flags.
type serveCmd struct {
	server.Config
	Banner bool `name:"banner" env:"KEYMINT_BANNER" help:"Print a quick-start text with the bound listen addresses once serving (make run)."`
}

// BeforeApply reads the secrets that are never flags (flags show in ps).
func (c *serveCmd) BeforeApply() error {
	c.Pepper = os.Getenv("KEYMINT_PEPPER")
	c.Webhooks.Key = os.Getenv("KEYMINT_WEBHOOK_KEY")
	return nil
}

func (c *serveCmd) Run(env *cliEnv) error {
	var opts []server.Option
	if c.Banner {
		opts = append(opts, server.OnServing(func(http, grpc net.Addr) { printBanner(env, http, grpc) }))
	}
	return server.Run(env.ctx, c.Config, c.Logger(env.stderr), opts...)
}

// printBanner is the quick start of make run, on the real addresses.
func printBanner(env *cliEnv, http, grpc net.Addr) {
	base := "http://" + http.String()
	fmt.Fprintf(env.stdout, `keymint: serving REST %s, gRPC %s.
Next, in another terminal:
  1. create the first user:  printf '%%s\n' 'a-long-password' | keymint user create --email you@example.com --org acme --admin --password-stdin
  2. mint a token:           curl -s -X POST %s/api-tokens/ -H 'content-type: application/json' \
                               -H 'x-api-email: you@example.com' -H 'x-api-password: a-long-password' -d '{"displayData":{"name":"first"}}'
  3. validate it:            curl -s %s/v1/tokens:validate -d '{"token":"km_..."}'
`, base, grpc, base, base)
}

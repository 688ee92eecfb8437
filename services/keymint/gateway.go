package main

import "github.com/keymint/keymint/services/server"

// gatewayCmd is `keymint gateway`: the REST gateway alone.
type gatewayCmd struct {
	server.GatewayConfig
}

func (c *gatewayCmd) Run(env *cliEnv) error {
	return server.RunGateway(env.ctx, c.GatewayConfig, c.Logger(env.stderr))
}

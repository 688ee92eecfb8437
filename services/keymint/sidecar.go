package main

import (
	"os"

	"github.com/keymint/keymint/services/server"
)

// sidecarCmd is `keymint sidecar`: ext_authz and forward-auth next to a
// resource service, asking the central keymint on a cache miss.
type sidecarCmd struct {
	server.SidecarConfig
}

// BeforeApply reads the watch token, never a flag (flags show in ps).
func (c *sidecarCmd) BeforeApply() error {
	c.CentralWatchToken = os.Getenv("KEYMINT_CENTRAL_WATCH_TOKEN")
	return nil
}

func (c *sidecarCmd) Run(env *cliEnv) error {
	return server.RunSidecar(env.ctx, c.SidecarConfig, c.Logger(env.stderr))
}

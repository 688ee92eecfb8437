package main

import (
	"fmt"

	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/store/postgres"
)

// migrateCmd is `keymint migrate`: apply the embedded migrations and exit,
// for operators who migrate in a deploy step (serve migrates on start too).
type migrateCmd struct {
	server.StoreConfig
	server.LogConfig
}

func (c *migrateCmd) Validate() error {
	return server.ProblemsOf(c.StoreConfig.Problems(), c.LogConfig.Problems())
}

func (c *migrateCmd) Run(env *cliEnv) error {
	if c.DatabaseURL != "" {
		if err := postgres.Migrate(env.ctx, c.DatabaseURL); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "postgres schema is up to date")
		return nil
	}
	st, err := server.OpenStore(env.ctx, c.StoreConfig, c.Logger(env.stderr))
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "embedded schema is up to date")
	return st.Close()
}

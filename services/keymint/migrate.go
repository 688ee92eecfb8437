package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/keymint/keymint/services/store/postgres"
)

// runMigrate applies the embedded migrations and exits: for operators who
// migrate in a deploy step (keymint serve migrates on start too).
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c, storeFlags...)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	if c.DatabaseURL != "" {
		if err := postgres.Migrate(ctx, c.DatabaseURL); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "postgres schema is up to date")
		return nil
	}
	st, err := openStore(ctx, &c, c.logger(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "embedded schema is up to date")
	return st.Close()
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/keymint/keymint/services/accounts"
)

// runUserCreate creates a user (and its organization when missing). The
// password is read from standard input, never from a flag, so it stays out of
// shell history and process listings.
func runUserCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c Config
	var email, org, scopes string
	var admin, passwordStdin bool
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&email, "email", "", "the user's email (required)")
	fs.StringVar(&org, "org", "", "organization name, created if missing (required)")
	fs.BoolVar(&admin, "admin", false, "make the user an organization admin")
	fs.StringVar(&scopes, "scopes", "", "comma-separated scopes the user may put in tokens (default: every scope of the organization)")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input (required)")
	bindFlags(fs, &c, append(storeFlags, "argon2-memory-kib", "argon2-time")...)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	if email == "" {
		problems = append(problems, "--email is required")
	}
	if org == "" {
		problems = append(problems, "--org is required")
	}
	if !passwordStdin {
		problems = append(problems, "--password-stdin is required (the password is read from standard input)")
	}
	if err := c.validate(fs); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, accounts.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")

	log := c.logger(stderr)
	st, err := openStore(ctx, &c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	hasher, err := accounts.NewHasher(accounts.HasherConfig{Params: c.hashParams()})
	if err != nil {
		return err
	}
	svc, err := accounts.New(ctx, accounts.Config{Store: st, Hasher: hasher, Logger: log})
	if err != nil {
		return err
	}
	var held []string
	for _, sc := range strings.Split(scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			held = append(held, sc)
		}
	}
	u, o, err := svc.CreateUser(ctx, accounts.NewUser{Email: email, OrgName: org, Password: password, Admin: admin, Scopes: held})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created user %s (id %s) in organization %q (id %s)%s\n",
		u.Email, u.ID, o.Name, o.ID, map[bool]string{true: " as admin", false: ""}[admin])
	return nil
}

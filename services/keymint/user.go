package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/server"
)

// userCmd is `keymint user`. create works on the store directly (to
// bootstrap the first admin, before any server runs); the others call a
// running server as an organization admin (admin.go).
type userCmd struct {
	Create        userCreateCmd        `cmd:"" help:"Create a user (and its organization when missing) on the store directly; the password is read from standard input."`
	List          userListCmd          `cmd:"" help:"List the organization's people."`
	Get           userGetCmd           `cmd:"" help:"Show one user."`
	Disable       userDisableCmd       `cmd:"" help:"Disable a user: no sign-in, sessions ended, every token revoked."`
	Enable        userEnableCmd        `cmd:"" help:"Enable a disabled user (their old tokens stay revoked)."`
	Delete        userDeleteCmd        `cmd:"" help:"Delete a user: every token revoked, the email freed; the audit log keeps the id."`
	ResetPassword userResetPasswordCmd `cmd:"" name:"reset-password" help:"Issue a one-time reset code, or set a password read from standard input."`
	SetAdmin      userSetAdminCmd      `cmd:"" name:"set-admin" help:"Promote a user to organization admin (on) or demote them (off)."`
}

// userCreateCmd creates a user. The password is read from standard input,
// never from a flag, so it stays out of shell history and process listings.
type userCreateCmd struct {
	Email         string `name:"email" help:"The user's email (required)."`
	Org           string `name:"org" help:"Organization name, created if missing (required)."`
	Admin         bool   `name:"admin" help:"Make the user an organization admin."`
	Scopes        string `name:"scopes" help:"Comma-separated scopes the user may put in tokens (default: every scope of the organization)."`
	PasswordStdin bool   `name:"password-stdin" help:"Read the password from the first line of standard input (required)."`
	server.StoreConfig
	server.LogConfig
	server.HashConfig
}

func (c *userCreateCmd) Validate() error {
	var missing []string
	if c.Email == "" {
		missing = append(missing, "--email is required")
	}
	if c.Org == "" {
		missing = append(missing, "--org is required")
	}
	if !c.PasswordStdin {
		missing = append(missing, "--password-stdin is required (the password is read from standard input)")
	}
	return server.ProblemsOf(missing, c.StoreConfig.Problems(), c.LogConfig.Problems(), c.HashConfig.Problems())
}

func (c *userCreateCmd) Run(env *cliEnv) error {
	line, err := bufio.NewReader(io.LimitReader(env.stdin, accounts.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")

	log := c.Logger(env.stderr)
	where, fresh := c.database()
	st, err := server.OpenStore(env.ctx, c.StoreConfig, log)
	if err != nil {
		return err
	}
	defer st.Close()
	hasher, err := accounts.NewHasher(accounts.HasherConfig{Params: c.HashParams()})
	if err != nil {
		return err
	}
	svc, err := accounts.New(env.ctx, accounts.Config{Store: st, Hasher: hasher, Logger: log})
	if err != nil {
		return err
	}
	u, o, err := svc.CreateUser(env.ctx, accounts.NewUser{Email: c.Email, OrgName: c.Org, Password: password, Admin: c.Admin, Scopes: splitList(c.Scopes)})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "created user %s (id %s) in organization %q (id %s)%s\n",
		u.Email, u.ID, o.Name, o.ID, map[bool]string{true: " as admin", false: ""}[c.Admin])
	// Which database, always: a typo in --data-dir must not pass unnoticed.
	if fresh {
		fmt.Fprintf(env.stdout, "database: %s (NEW: there was none; `keymint serve` must use the same --data-dir)\n", where)
	} else {
		fmt.Fprintf(env.stdout, "database: %s\n", where)
	}
	return nil
}

// database names the store the command opens, without credentials, and
// whether it is an embedded database that does not exist yet.
func (c *userCreateCmd) database() (where string, fresh bool) {
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err == nil && u.Host != "" {
			return "postgres " + u.Host + u.Path, false
		}
		return "postgres (--database-url)", false
	}
	path := filepath.Join(c.DataDir, "keymint.db")
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	_, err := os.Stat(path)
	return "embedded sqlite " + path, errors.Is(err, fs.ErrNotExist)
}

// splitList is a comma-separated list's non-empty entries, trimmed.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

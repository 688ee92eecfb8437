package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/server"
)

// adminConn is how the admin commands reach keymint: over gRPC to a running
// server, as an organization admin (email + password: a token cannot mint
// tokens, and the password proves a person). Only `user create` works on
// the store directly, to bootstrap the first admin.
type adminConn struct {
	Server string               `name:"server" env:"KEYMINT_SERVER" default:"127.0.0.1:9090" help:"keymint gRPC server to manage."`
	Dial   server.DialTLSConfig `embed:"" prefix:"server-" envprefix:"KEYMINT_SERVER_"`
	Email  string               `name:"admin-email" env:"KEYMINT_ADMIN_EMAIL" help:"An organization admin's email (required); the password is read from KEYMINT_ADMIN_PASSWORD, never a flag."`
	Output string               `name:"output" short:"o" enum:"table,json" default:"table" help:"Output format: table or json."`
	// Timeout bounds each call.
	Timeout time.Duration `name:"timeout" env:"KEYMINT_ADMIN_TIMEOUT" default:"30s" help:"How long one call may take."`
}

// call dials the server and runs fn with the admin's credentials.
func (c *adminConn) call(env *cliEnv, fn func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error), table func(w io.Writer, m proto.Message)) error {
	var problems []string
	if c.Email == "" {
		problems = append(problems, "--admin-email is required")
	}
	password := os.Getenv("KEYMINT_ADMIN_PASSWORD")
	if password == "" {
		problems = append(problems, "KEYMINT_ADMIN_PASSWORD must hold the admin's password")
	}
	if c.Timeout <= 0 {
		problems = append(problems, "--timeout must be positive")
	}
	if err := server.ProblemsOf(problems, c.Dial.Problems("server-")); err != nil {
		return err
	}
	creds, err := c.Dial.Credentials(c.Server)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(c.Server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.Server, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(env.ctx, c.Timeout)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("x-api-email", c.Email, "x-api-password", password))
	m, err := fn(ctx, conn)
	if err != nil {
		return err
	}
	if c.Output == "json" {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.stdout, "%s\n", b)
		return err
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	table(w, m)
	return w.Flush()
}

func ts(t interface{ AsTime() time.Time }, set bool) string {
	if !set {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func userTable(w io.Writer, users ...*keymintv1.User) {
	fmt.Fprintln(w, "ID\tEMAIL\tADMIN\tDISABLED\tSCOPES\tCREATED")
	for _, u := range users {
		fmt.Fprintf(w, "%s\t%s\t%t\t%t\t%s\t%s\n", u.GetId(), u.GetEmail(), u.GetAdmin(), u.GetDisabled(),
			orAll(u.GetScopes()), ts(u.GetCreateTime(), u.GetCreateTime() != nil))
	}
}

func orAll(scopes []string) string {
	if len(scopes) == 0 {
		return "(all)"
	}
	return strings.Join(scopes, ",")
}

func oneUser(w io.Writer, m proto.Message) { userTable(w, m.(*keymintv1.User)) }

func accountsClient(conn *grpc.ClientConn) keymintv1.AccountServiceClient {
	return keymintv1.NewAccountServiceClient(conn)
}

type userListCmd struct {
	adminConn
	EmailPrefix string `name:"email-prefix" help:"Only users whose email starts with this."`
	PageSize    int32  `name:"page-size" default:"100" help:"Users per page (at most 1000)."`
	PageToken   string `name:"page-token" help:"next_page_token of the previous page."`
}

func (c *userListCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).ListUsers(ctx, &keymintv1.ListUsersRequest{EmailPrefix: c.EmailPrefix, PageSize: c.PageSize, PageToken: c.PageToken})
	}, func(w io.Writer, m proto.Message) {
		r := m.(*keymintv1.ListUsersResponse)
		userTable(w, r.GetUsers()...)
		if r.GetNextPageToken() != "" {
			fmt.Fprintf(w, "next page: --page-token %s\n", r.GetNextPageToken())
		}
	})
}

// userIDCmd is a command on one user.
type userIDCmd struct {
	adminConn
	ID string `arg:"" name:"user-id" help:"The user's id (keymint user list)."`
}

type userGetCmd struct{ userIDCmd }

func (c *userGetCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).GetUser(ctx, &keymintv1.GetUserRequest{UserId: c.ID})
	}, oneUser)
}

type userDisableCmd struct{ userIDCmd }

func (c *userDisableCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).DisableUser(ctx, &keymintv1.DisableUserRequest{UserId: c.ID})
	}, oneUser)
}

type userEnableCmd struct{ userIDCmd }

func (c *userEnableCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).EnableUser(ctx, &keymintv1.EnableUserRequest{UserId: c.ID})
	}, oneUser)
}

type userDeleteCmd struct{ userIDCmd }

func (c *userDeleteCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).DeleteUser(ctx, &keymintv1.DeleteUserRequest{UserId: c.ID})
	}, func(w io.Writer, m proto.Message) {
		r := m.(*keymintv1.DeleteUserResponse)
		fmt.Fprintf(w, "deleted user %s: %d tokens revoked, %d sessions ended\n", c.ID, r.GetRevokedTokens(), r.GetEndedSessions())
	})
}

type userResetPasswordCmd struct {
	userIDCmd
	NewPasswordStdin bool `name:"new-password-stdin" help:"Set the password read from the first line of standard input instead of issuing a one-time reset code."`
}

func (c *userResetPasswordCmd) Run(env *cliEnv) error {
	req := &keymintv1.ResetUserPasswordRequest{UserId: c.ID}
	if c.NewPasswordStdin {
		line, err := bufio.NewReader(io.LimitReader(env.stdin, accounts.MaxPasswordLen+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		if req.NewPassword = strings.TrimRight(line, "\r\n"); req.NewPassword == "" {
			return errors.New("--new-password-stdin: standard input held no password")
		}
	}
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).ResetUserPassword(ctx, req)
	}, func(w io.Writer, m proto.Message) {
		r := m.(*keymintv1.ResetUserPasswordResponse)
		if r.GetResetCode() == "" {
			fmt.Fprintf(w, "password of user %s set; %d sessions ended\n", c.ID, r.GetEndedSessions())
			return
		}
		fmt.Fprintf(w, "reset code (shown once, valid until %s): %s\n%d sessions ended\n",
			ts(r.GetExpireTime(), true), r.GetResetCode(), r.GetEndedSessions())
	})
}

type userSetAdminCmd struct {
	userIDCmd
	State string `arg:"" name:"on|off" enum:"on,off" help:"on: make the user an organization admin; off: no longer."`
}

func (c *userSetAdminCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).SetUserAdmin(ctx, &keymintv1.SetUserAdminRequest{UserId: c.ID, Admin: c.State == "on"})
	}, oneUser)
}

func serviceAccountTable(w io.Writer, list ...*keymintv1.ServiceAccount) {
	fmt.Fprintln(w, "ID\tNAME\tSCOPES\tCREATED\tDESCRIPTION")
	for _, a := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.GetId(), a.GetName(), orAll(a.GetScopes()),
			ts(a.GetCreateTime(), a.GetCreateTime() != nil), a.GetDescription())
	}
}

func oneServiceAccount(w io.Writer, m proto.Message) {
	serviceAccountTable(w, m.(*keymintv1.ServiceAccount))
}

type serviceAccountCmd struct {
	Create serviceAccountCreateCmd `cmd:"" help:"Create a service account."`
	List   serviceAccountListCmd   `cmd:"" help:"List the organization's service accounts."`
	Get    serviceAccountGetCmd    `cmd:"" help:"Show one service account."`
	Delete serviceAccountDeleteCmd `cmd:"" help:"Delete a service account and revoke its tokens."`
}

type serviceAccountCreateCmd struct {
	adminConn
	Name        string `name:"name" required:"" help:"Name, unique in the organization: a-z, 0-9 and -, starting with a letter."`
	Description string `name:"description" help:"What it is for."`
	Scopes      string `name:"scopes" help:"Comma-separated scopes its tokens may hold (default: every scope of the organization)."`
}

func (c *serviceAccountCreateCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).CreateServiceAccount(ctx, &keymintv1.CreateServiceAccountRequest{
			Name: c.Name, Description: c.Description, Scopes: splitList(c.Scopes)})
	}, oneServiceAccount)
}

type serviceAccountListCmd struct {
	adminConn
	PageSize  int32  `name:"page-size" default:"100" help:"Service accounts per page (at most 1000)."`
	PageToken string `name:"page-token" help:"next_page_token of the previous page."`
}

func (c *serviceAccountListCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).ListServiceAccounts(ctx, &keymintv1.ListServiceAccountsRequest{PageSize: c.PageSize, PageToken: c.PageToken})
	}, func(w io.Writer, m proto.Message) {
		r := m.(*keymintv1.ListServiceAccountsResponse)
		serviceAccountTable(w, r.GetServiceAccounts()...)
		if r.GetNextPageToken() != "" {
			fmt.Fprintf(w, "next page: --page-token %s\n", r.GetNextPageToken())
		}
	})
}

type serviceAccountIDCmd struct {
	adminConn
	ID string `arg:"" name:"service-account-id" help:"The service account's id."`
}

type serviceAccountGetCmd struct{ serviceAccountIDCmd }

func (c *serviceAccountGetCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).GetServiceAccount(ctx, &keymintv1.GetServiceAccountRequest{ServiceAccountId: c.ID})
	}, oneServiceAccount)
}

type serviceAccountDeleteCmd struct{ serviceAccountIDCmd }

func (c *serviceAccountDeleteCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).DeleteServiceAccount(ctx, &keymintv1.DeleteServiceAccountRequest{ServiceAccountId: c.ID})
	}, func(w io.Writer, m proto.Message) {
		fmt.Fprintf(w, "deleted service account %s: %d tokens revoked\n", c.ID, m.(*keymintv1.DeleteServiceAccountResponse).GetRevokedTokens())
	})
}

type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Mint a token (yours, or a service account's); the secret is shown once."`
	List   tokenListCmd   `cmd:"" help:"List tokens: yours, the organization's people's (--all-users) or a service account's."`
	Revoke tokenRevokeCmd `cmd:"" help:"Revoke a token at once."`
	Rotate tokenRotateCmd `cmd:"" help:"Mint a token's successor; the old one stays valid for --grace."`
}

func tokenTable(w io.Writer, list ...*keymintv1.Token) {
	fmt.Fprintln(w, "ID\tNAME\tOWNER\tKIND\tSTATUS\tSCOPES\tEXPIRES\tHINT")
	for _, t := range list {
		kind := "user"
		if t.GetPrincipalKind() == keymintv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT {
			kind = "service_account"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetName(), t.GetUserId(), kind,
			strings.ToLower(strings.TrimPrefix(t.GetStatus().String(), "TOKEN_STATUS_")), strings.Join(t.GetScopes(), ","),
			ts(t.GetExpireTime(), t.GetExpireTime() != nil), t.GetHint())
	}
}

func minted(w io.Writer, m proto.Message) {
	r := m.(*keymintv1.CreateTokenResponse)
	tokenTable(w, r.GetToken())
	fmt.Fprintf(w, "secret (shown once): %s\n", r.GetSecret())
}

type tokenCreateCmd struct {
	adminConn
	Name           string        `name:"name" required:"" help:"The token's name."`
	Description    string        `name:"description" help:"What it is for."`
	Scopes         string        `name:"scopes" help:"Comma-separated scopes."`
	TTL            time.Duration `name:"ttl" help:"Lifetime (default: the organization's policy)."`
	ServiceAccount string        `name:"service-account" help:"Mint for this service account (its id) instead of for you."`
}

func (c *tokenCreateCmd) Run(env *cliEnv) error {
	req := &keymintv1.CreateTokenRequest{Name: c.Name, Description: c.Description, Scopes: splitList(c.Scopes), ServiceAccountId: c.ServiceAccount}
	if c.TTL != 0 {
		req.Ttl = durationpb.New(c.TTL)
	}
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return keymintv1.NewTokenServiceClient(conn).CreateToken(ctx, req)
	}, minted)
}

type tokenListCmd struct {
	adminConn
	AllUsers       bool   `name:"all-users" help:"Every person's token of the organization."`
	ServiceAccount string `name:"service-account" help:"This service account's tokens (its id)."`
	ShowInactive   bool   `name:"show-inactive" help:"Include revoked and expired tokens."`
	PageSize       int32  `name:"page-size" default:"100" help:"Tokens per page (at most 1000)."`
	PageToken      string `name:"page-token" help:"next_page_token of the previous page."`
}

func (c *tokenListCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return keymintv1.NewTokenServiceClient(conn).ListTokens(ctx, &keymintv1.ListTokensRequest{AllUsers: c.AllUsers,
			ServiceAccountId: c.ServiceAccount, ShowInactive: c.ShowInactive, PageSize: c.PageSize, PageToken: c.PageToken})
	}, func(w io.Writer, m proto.Message) {
		r := m.(*keymintv1.ListTokensResponse)
		tokenTable(w, r.GetTokens()...)
		if r.GetNextPageToken() != "" {
			fmt.Fprintf(w, "next page: --page-token %s\n", r.GetNextPageToken())
		}
	})
}

type tokenRevokeCmd struct {
	adminConn
	ID string `arg:"" name:"token-id" help:"The token's id."`
}

func (c *tokenRevokeCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return keymintv1.NewTokenServiceClient(conn).RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: c.ID})
	}, func(w io.Writer, m proto.Message) { tokenTable(w, m.(*keymintv1.Token)) })
}

type tokenRotateCmd struct {
	adminConn
	ID    string        `arg:"" name:"token-id" help:"The token's id."`
	Grace time.Duration `name:"grace" help:"How long the old token stays valid (capped by the organization's policy)."`
}

func (c *tokenRotateCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return keymintv1.NewTokenServiceClient(conn).RotateToken(ctx, &keymintv1.RotateTokenRequest{Id: c.ID, GracePeriod: durationpb.New(c.Grace)})
	}, minted)
}

type orgCmd struct {
	List orgListCmd `cmd:"" help:"List the organizations you administer."`
}

type orgListCmd struct{ adminConn }

func (c *orgListCmd) Run(env *cliEnv) error {
	return c.call(env, func(ctx context.Context, conn *grpc.ClientConn) (proto.Message, error) {
		return accountsClient(conn).ListOrganizations(ctx, &keymintv1.ListOrganizationsRequest{})
	}, func(w io.Writer, m proto.Message) {
		fmt.Fprintln(w, "ID\tNAME\tCREATED")
		for _, o := range m.(*keymintv1.ListOrganizationsResponse).GetOrganizations() {
			fmt.Fprintf(w, "%s\t%s\t%s\n", o.GetId(), o.GetName(), ts(o.GetCreateTime(), o.GetCreateTime() != nil))
		}
	})
}

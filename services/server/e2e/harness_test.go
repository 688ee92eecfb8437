package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/alecthomas/kong"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/server/servertest"
	"github.com/keymint/keymint/services/store"
	"google.golang.org/grpc"
)

// syncBuffer collects log lines; the name the tests use for
// servertest.LogBuffer.
type syncBuffer = servertest.LogBuffer

// Config is a server configuration with the test-only hooks, which the
// server takes as options (server.WithStoreWrapper, WithLeakPassHook).
type Config struct {
	server.Config
	// storeHook wraps the store (to count its calls).
	storeHook func(store.Store) store.Store
	// leakPassHook runs before each pass of the leak report processor.
	leakPassHook func(context.Context) bool
}

// options are c's hooks as server options.
func (c *Config) options() []server.Option {
	var opts []server.Option
	if c.storeHook != nil {
		opts = append(opts, server.WithStoreWrapper(c.storeHook))
	}
	if c.leakPassHook != nil {
		opts = append(opts, server.WithLeakPassHook(c.leakPassHook))
	}
	return opts
}

// testServer is a real keymint server on loopback ports
// (servertest.Server, under the names the tests use).
type testServer struct {
	cfg    Config
	http   string // base URL
	grpc   string
	client keymintv1.TokenServiceClient
	logs   *syncBuffer
	stop   func()
	// srv is the server itself, for its accessors (HasherStats ...).
	srv *server.Server
	// conn is the client connection client uses, for other services.
	conn *grpc.ClientConn
}

// testConfig is a serve configuration on ephemeral ports with cheap argon2.
func testConfig(t testing.TB) Config {
	return Config{Config: servertest.Config(t)}
}

// startServer runs a server on cfg until t ends; before, if given, sees the
// server after it is built and before it serves (to register test services).
// Its REST exchanges are checked against the OpenAPI document from the first
// readiness probe on.
func startServer(t testing.TB, cfg Config, before ...func(*server.Server)) *testServer {
	t.Helper()
	watch := func(s *server.Server) { specCheck.watch("http://" + s.HTTPAddr().String()) }
	s := servertest.Start(t, cfg.Config, cfg.options(), append([]func(*server.Server){watch}, before...)...)
	return &testServer{cfg: cfg, http: s.URL, grpc: s.GRPCAddr, client: s.Client, logs: s.Logs, stop: s.Stop, srv: s.Server, conn: s.Conn}
}

func waitReady(t testing.TB, base string) { servertest.WaitReady(t, base) }

// runSidecar runs the sidecar as `keymint sidecar` with args would (its
// flags read by kong, with their defaults and environment variables), in
// this process, logging to w, until ctx ends.
func runSidecar(ctx context.Context, args []string, w io.Writer) error {
	c, err := parseCommand[server.SidecarConfig]("sidecar", args)
	if err != nil {
		return err
	}
	return server.RunSidecar(ctx, *c, c.Logger(w))
}

// background runs run (a command, logging to w) until t ends, then
// reports an error it returned, with its log, under name. It returns the
// log.
func background(t *testing.T, name string, run func(context.Context, io.Writer) error) *syncBuffer {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, logs) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("%s: %v\n%s", name, err, logs.String())
		}
	})
	return logs
}

// parseCommand reads args into a new C as `keymint name` does.
func parseCommand[C any](name string, args []string) (*C, error) {
	c := new(C)
	parser, err := kong.New(c, kong.Name(name), kong.Vars(server.Defaults()))
	if err != nil {
		return nil, err
	}
	_, err = parser.Parse(args)
	return c, err
}

// createUser creates a user (and its organization when missing) on cfg's
// store with cheap argon2, as `keymint user create` does (the command itself
// is tested in services/keymint).
func createUser(t testing.TB, cfg Config, email, org, password string, admin bool) {
	t.Helper()
	newUser(t, cfg.StoreConfig, server.HashConfig{Argon2MemoryKiB: 64, Argon2Time: 1},
		accounts.NewUser{Email: email, OrgName: org, Password: password, Admin: admin})
}

// newUser creates u on the store sc names, its password hashed with h.
func newUser(t testing.TB, sc server.StoreConfig, h server.HashConfig, u accounts.NewUser) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := server.OpenStore(ctx, sc, log)
	if err != nil {
		t.Fatalf("user create: %v", err)
	}
	defer st.Close()
	hasher, err := accounts.NewHasher(accounts.HasherConfig{Params: h.HashParams()})
	if err != nil {
		t.Fatalf("user create: %v", err)
	}
	svc, err := accounts.New(ctx, accounts.Config{Store: st, Hasher: hasher, Logger: log})
	if err != nil {
		t.Fatalf("user create: %v", err)
	}
	if _, _, err := svc.CreateUser(ctx, u); err != nil {
		t.Fatalf("user create %s: %v", u.Email, err)
	}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func do(t *testing.T, method, url string, headers map[string]string, body string, out any) (int, string) {
	t.Helper()
	return servertest.Do(t, method, url, headers, body, out)
}

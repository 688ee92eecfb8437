package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer collects a server's log lines for the no-secrets-in-logs checks.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

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

// runServe, runSidecar and runHealthcheck run the command as the binary
// would, with args after the command's name.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"serve"}, args...), strings.NewReader(""), io.Discard, stderr)
}

func runSidecar(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"sidecar"}, args...), strings.NewReader(""), io.Discard, stderr)
}

func runHealthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	return realMain(ctx, append([]string{"healthcheck"}, args...), strings.NewReader(""), io.Discard, stderr)
}

// testServer is a real keymint server on loopback ports.
type testServer struct {
	cfg    Config
	http   string // base URL
	grpc   string
	client keymintv1.TokenServiceClient
	logs   *syncBuffer
	stop   func()
	// srv is the server itself, for tests that look inside (its hasher).
	srv *server.Server
	// conn is the client connection client uses, for other services.
	conn *grpc.ClientConn
}

// testConfig is a serve configuration on ephemeral ports with cheap argon2.
func testConfig(t testing.TB) Config {
	return Config{Config: server.Config{
		HTTPAddr:        "127.0.0.1:0",
		GRPCAddr:        "127.0.0.1:0",
		StoreConfig:     server.StoreConfig{DataDir: t.TempDir()},
		TokenPrefix:     "km",
		LogConfig:       server.LogConfig{LogFormat: "json", LogLevel: "debug"},
		ShutdownTimeout: 5 * time.Second,
		UsageFlush:      100 * time.Millisecond,
		HashConfig:      server.HashConfig{Argon2MemoryKiB: 64, Argon2Time: 1},
		Argon2BudgetMiB: 16,
		Cache:           server.CacheConfig{L1Size: cache.DefaultL1Size, RedisTimeout: 50 * time.Millisecond},
	}}
}

// startServer runs a server on cfg until t ends; before, if given, sees the
// server after it is built and before it serves (to register test services).
func startServer(t testing.TB, cfg Config, before ...func(*server.Server)) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg.Config, log, cfg.options()...)
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	for _, b := range before {
		b(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		cfg:    cfg,
		http:   "http://" + srv.HTTPAddr().String(),
		grpc:   srv.GRPCAddr().String(),
		client: keymintv1.NewTokenServiceClient(conn),
		logs:   logs,
		srv:    srv,
		conn:   conn,
	}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			conn.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server run: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	specCheck.watch(ts.http)
	waitReady(t, ts.http)
	return ts
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server never became ready")
}

// createUser runs `keymint user create` against the server's store.
func createUser(t testing.TB, cfg Config, email, org, password string, admin bool) {
	t.Helper()
	args := []string{"user", "create", "--email", email, "--org", org, "--password-stdin",
		"--data-dir", cfg.DataDir, "--argon2-memory-kib", "64", "--argon2-time", "1", "--log-format", "text"}
	if cfg.DatabaseURL != "" {
		args = append(args, "--database-url", cfg.DatabaseURL)
	}
	if admin {
		args = append(args, "--admin")
	}
	var out, errOut bytes.Buffer
	if err := realMain(context.Background(), args, strings.NewReader(password+"\n"), &out, &errOut); err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), password) {
		t.Fatal("user create printed the password")
	}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func do(t *testing.T, method, url string, headers map[string]string, body string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, string(b)
}

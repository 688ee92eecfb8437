// Package servertest runs a real keymint server (services/server) on
// loopback ports for tests, as net/http/httptest does for handlers: the
// black-box tests of services/server/e2e and the command tests of
// services/keymint share it. It also holds the ext_authz answers both
// check (extauthz.go).
package servertest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/testlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// LogBuffer collects a server's log lines (safe for concurrent writers),
// for the no-secrets-in-logs checks.
type LogBuffer = testlog.Buffer

// Config is a serve configuration on ephemeral ports with cheap argon2 and
// an embedded store in a directory of t's own.
func Config(t testing.TB) server.Config {
	return server.Config{
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
	}
}

// Server is a running keymint server.
type Server struct {
	// URL is the REST base URL (http://127.0.0.1:port); GRPCAddr the gRPC
	// port's address.
	URL      string
	GRPCAddr string
	// Conn is a plaintext client connection to GRPCAddr; Client uses it.
	Conn   *grpc.ClientConn
	Client keymintv1.TokenServiceClient
	// Logs holds the server's JSON log lines (debug level).
	Logs *LogBuffer
	// Server is the server itself, for its accessors (HasherStats ...).
	Server *server.Server

	stop func()
}

// Stop shuts the server down and waits for Run to return; t's cleanup
// calls it too, and calls after the first do nothing.
func (s *Server) Stop() { s.stop() }

// Start runs a server on cfg with opts until t ends, and returns once it
// answers /readyz. before, if given, sees the server after it is built and
// before it serves (to register test services, or watch its address).
func Start(t testing.TB, cfg server.Config, opts []server.Option, before ...func(*server.Server)) *Server {
	t.Helper()
	logs := &LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log, opts...)
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
	s := &Server{
		URL:      "http://" + srv.HTTPAddr().String(),
		GRPCAddr: srv.GRPCAddr().String(),
		Conn:     conn,
		Client:   keymintv1.NewTokenServiceClient(conn),
		Logs:     logs,
		Server:   srv,
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			conn.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server run: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	WaitReady(t, s.URL)
	return s
}

// WaitReady returns once base/readyz answers 200 (over http.DefaultClient,
// so a test's validating transport sees the probes too).
func WaitReady(t testing.TB, base string) {
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

// FreePort is a loopback TCP port free when it returns, for commands that
// take a fixed listen address.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitListening returns once addr accepts a TCP connection.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}

// Do sends a request over http.DefaultClient and decodes a JSON answer
// into out (when not nil); it returns the status and the body.
func Do(t testing.TB, method, url string, headers map[string]string, body string, out any) (int, string) {
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

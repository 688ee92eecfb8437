package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/keymint/keymint/gateway"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/tokens"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Transport limits: small messages are all keymint's API needs.
const (
	maxGRPCMessage       = 1 << 20
	maxConcurrentStreams = 1000
	maxHeaderBytes       = 64 << 10
	readHeaderTimeout    = 5 * time.Second
	httpReadTimeout      = 30 * time.Second
	httpWriteTimeout     = 30 * time.Second
	httpIdleTimeout      = 120 * time.Second
)

// publicMethods never read credentials.
var publicMethods = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName: true,
	healthpb.Health_Check_FullMethodName:                true,
	healthpb.Health_Watch_FullMethodName:                true,
	healthpb.Health_List_FullMethodName:                 true,
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c, "http-addr", "grpc-addr", "data-dir", "database-url", "pepper-file", "token-prefix",
		"log-format", "log-level", "shutdown-timeout", "usage-flush", "argon2-memory-kib", "argon2-time", "argon2-budget-mib")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	log := c.logger(stderr)
	srv, err := newServer(ctx, &c, log)
	if err != nil {
		return err
	}
	return srv.run(ctx)
}

// server is a running keymint: its store, services and listeners.
type server struct {
	cfg      *Config
	log      *slog.Logger
	closers  []func()
	grpc     *grpc.Server
	health   *health.Server
	usage    *tokens.UsageRecorder
	grpcLis  net.Listener
	httpLis  net.Listener
	http     *http.Server
	conn     *grpc.ClientConn
	stopOnce sync.Once
}

func newServer(ctx context.Context, c *Config, log *slog.Logger) (_ *server, err error) {
	s := &server{cfg: c, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	keys, err := c.loadKeyring(log)
	if err != nil {
		return nil, err
	}
	format, err := tokens.NewFormat(c.TokenPrefix)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, c, log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = st.Close() })

	hasher, err := accounts.NewHasher(accounts.HasherConfig{Params: c.hashParams(), MemoryBudget: int64(c.Argon2BudgetMiB) << 20})
	if err != nil {
		return nil, err
	}
	acct, err := accounts.New(ctx, accounts.Config{Store: st, Hasher: hasher, Logger: log})
	if err != nil {
		return nil, err
	}
	s.usage = tokens.NewUsageRecorder(st, c.UsageFlush, log)
	tok := tokens.New(tokens.Config{Store: st, Keyring: keys, Format: format, Logger: log, Usage: s.usage})
	authn := &accounts.Authenticator{Accounts: acct, Tokens: tok, Public: publicMethods}

	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(maxGRPCMessage),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(recoverUnary(log), fault.UnaryServerInterceptor(log), authn.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(recoverStream(log), fault.StreamServerInterceptor(log), authn.StreamServerInterceptor()),
	)
	keymintv1.RegisterTokenServiceServer(s.grpc, tokens.NewServer(tok))
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	if s.grpcLis, err = net.Listen("tcp", c.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen grpc %s: %w", c.GRPCAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.grpcLis.Close() })
	if s.httpLis, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen http %s: %w", c.HTTPAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.httpLis.Close() })

	// The gateway reaches the API through a real gRPC connection, so REST
	// callers go through the same interceptors as gRPC callers.
	s.conn, err = grpc.NewClient(dialTarget(s.grpcLis.Addr()), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial own grpc listener: %w", err)
	}
	s.closers = append(s.closers, func() { _ = s.conn.Close() })
	gw, err := gateway.New(ctx, gateway.Config{
		Conn:   s.conn,
		Ready:  st.Ping,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("build gateway: %w", err)
	}
	s.http = newHTTPServer(gw, log)
	return s, nil
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// dialTarget turns a listener address into one a client can dial: a
// wildcard host becomes loopback.
func dialTarget(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// run serves until ctx ends, then shuts down in order: stop taking requests,
// let in-flight ones finish, flush last-used times, close the store.
func (s *server) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() {
		if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	usageDone := make(chan struct{})
	go func() { s.usage.Run(ctx); close(usageDone) }()
	s.log.Info("keymint serving", "http", s.httpLis.Addr().String(), "grpc", s.grpcLis.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("keymint shutting down")
	s.health.Shutdown()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer scancel()
	_ = s.http.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		s.grpc.Stop()
	}
	cancel()
	<-usageDone
	s.close()
	return err
}

func (s *server) close() {
	s.stopOnce.Do(func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	})
}

// recoverUnary turns a panic into Internal: the stack goes to the log, never
// to the caller.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in rpc", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in stream", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

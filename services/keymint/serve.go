package main

import (
	"context"
	"crypto/tls"

	"errors"
	"flag"
	"fmt"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/keymint/keymint/gateway"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/connlimit"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/secretscan"
	"github.com/keymint/keymint/services/sidecar"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tokens"
	"github.com/keymint/keymint/services/tracing"
	"github.com/keymint/keymint/services/webhooks"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"
)

// Listener limits: every bound on what a caller can make a port hold, in
// one place (each is in the README's configuration table). Small messages
// and metadata are all keymint's API needs.
const (
	// maxGRPCMessage bounds a received gRPC message.
	maxGRPCMessage = 1 << 20
	// maxGRPCHeaderList bounds a gRPC call's metadata (HTTP/2
	// SETTINGS_MAX_HEADER_LIST_SIZE; grpc-go's default is 16 MiB, and 20
	// streams of 400 KB metadata held 830 MB of heap). Credentials are well
	// under 1 KiB.
	maxGRPCHeaderList = 16 << 10
	// maxConcurrentStreams bounds the calls in flight on one gRPC
	// connection; with maxGRPCHeaderList it bounds a connection's metadata.
	maxConcurrentStreams = 100
	// grpcHandshakeTimeout bounds a new gRPC connection's TLS and HTTP/2
	// handshake (grpc-go's default: 120 s).
	grpcHandshakeTimeout = 10 * time.Second
	// keepaliveMinTime: a client pinging more often than this is
	// disconnected (the enforcement policy); pings without streams are allowed.
	keepaliveMinTime = 10 * time.Second
	// keepaliveTime and keepaliveTimeout: the server pings an idle
	// connection this often and drops it when no answer comes in time, so
	// a vanished peer does not hold a connection slot.
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
	// maxConnectionIdle closes a gRPC connection without calls this long.
	maxConnectionIdle = 15 * time.Minute
	// defaultMaxConns and defaultMaxConnsPerIP bound each port's open
	// connections (--max-connections, --max-connections-per-ip).
	defaultMaxConns      = 1024
	defaultMaxConnsPerIP = 128

	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 5 * time.Second
	httpReadTimeout   = 30 * time.Second
	httpWriteTimeout  = 30 * time.Second
	httpIdleTimeout   = 120 * time.Second
	// grpcStreamWorkers is how many calls run on reused goroutines at once;
	// beyond it gRPC starts a goroutine per call, as without workers.
	grpcStreamWorkers = 64
)

// grpcTransportOptions are the gRPC server's listener limits.
func grpcTransportOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxGRPCMessage),
		grpc.MaxHeaderListSize(maxGRPCHeaderList),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ConnectionTimeout(grpcHandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: maxConnectionIdle, Time: keepaliveTime, Timeout: keepaliveTimeout}),
	}
}

// limitListener caps l's open connections (total and per client address);
// trusted proxies and gRPC peers, which carry many clients, are exempt
// from the per-address cap.
func limitListener(l net.Listener, c *Config, clients *clientip.Resolver) net.Listener {
	total, perIP := int(c.MaxConns), int(c.MaxConnsPerIP)
	if total == 0 {
		total = defaultMaxConns
	}
	if perIP == 0 {
		perIP = defaultMaxConnsPerIP
	}
	return connlimit.Listen(l, connlimit.Config{Total: total, PerAddr: perIP,
		Exempt: func(a netip.Addr) bool { return clients.Trusted(a) || clients.TrustedPeer(a) }})
}

// hotMethods are logged at debug level when they succeed.
var hotMethods = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName: true,
	authv3.Authorization_Check_FullMethodName:           true,
}

// watchMethods are long-lived streams, exempt from the RPC deadline cap.
var watchMethods = map[string]bool{
	healthpb.Health_Watch_FullMethodName:                   true,
	keymintv1.TokenService_WatchRevocations_FullMethodName: true,
}

// publicMethods never read credentials.
var publicMethods = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName:    true,
	keymintv1.TokenService_WatchRevocations_FullMethodName: true,
	authv3.Authorization_Check_FullMethodName:              true,
	keymintv1.AccountService_Login_FullMethodName:          true, // credentials are in the request
	// The reset code is the credential; throttled like Login.
	keymintv1.AccountService_CompletePasswordReset_FullMethodName: true,
	// Anyone who found a token in public may report it; it is rate limited
	// per client address and tells nothing.
	keymintv1.TokenService_ReportLeakedTokens_FullMethodName: true,
	healthpb.Health_Check_FullMethodName:                     true,
	healthpb.Health_Watch_FullMethodName:                     true,
	healthpb.Health_List_FullMethodName:                      true,
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c, "tls", "http-addr", "grpc-addr", "data-dir", "database-url", "database-read-url", "otlp-endpoint", "pepper-file", "token-prefix",
		"log-format", "log-level", "shutdown-timeout", "usage-flush", "argon2-memory-kib", "argon2-time", "argon2-budget-mib",
		"session-idle", "session-max", "secure-cookies",
		"routes-file", "route", "strip-authorization", "forward-auth-style", "routes-ignore-case",
		"redis-url", "redis-timeout", "cache-l1-size", "cache-l1-ttl", "cache-negative-ttl", "cache-redis-ttl",
		"trusted-proxies", "trusted-grpc-peers", "signin-limits", "argon2-max-wait", "memory-limit-mib", "max-connections", "revocations",
		"issuer", "forward-auth-identity-body", "github-keys", "webhooks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	log := c.logger(stderr)
	tuneGC()
	srv, err := newServer(ctx, &c, log)
	if err != nil {
		return err
	}
	// Nothing at start hashes, so the limit can wait for the hasher's slots.
	applyMemoryLimit(&c, int64(srv.hasher.Slots())*int64(c.Argon2MemoryKiB)<<10, log)
	return srv.run(ctx)
}

// server is a running keymint: its store, services and listeners.
type server struct {
	cfg     *Config
	log     *slog.Logger
	closers []func()
	grpc    *grpc.Server
	health  *health.Server
	usage   *tokens.UsageRecorder
	// tokens is the TokenService, waited for at shutdown (leak revocations).
	tokens *tokens.Service
	// revocations follows the store's revocation log and feeds
	// WatchRevocations streams; closed first at shutdown.
	revocations *tokens.Revocations
	// revocationFeed is the log's fast path between replicas over Redis;
	// nil without Redis.
	revocationFeed *rediscache.RevocationFeed
	grpcLis        net.Listener
	gatewayLis     *bufconn.Listener
	httpLis        net.Listener
	http           *http.Server
	conn           *grpc.ClientConn
	cache          *validationCache
	registry       *prometheus.Registry
	// hasher bounds password hashing; kept for its Stats.
	hasher *accounts.Hasher

	// leaks revokes what recorded secret-scanning reports name;
	// githubKeys (nil when off) verifies GitHub's reports.
	leaks      *secretscan.Processor
	githubKeys *secretscan.KeySet
	// dispatcher and expiry deliver webhooks; nil when webhooks are off.
	dispatcher *webhooks.Dispatcher
	expiry     *webhooks.Scheduler
	// throttleNotices aggregates refused sign-ins into signin.throttled.
	throttleNotices *webhooks.ThrottleNotices
	stopOnce        sync.Once
}

func newServer(ctx context.Context, c *Config, log *slog.Logger) (_ *server, err error) {
	s := &server{cfg: c, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	c.Tracing.ServiceName = "keymint"
	stopTracing, err := tracing.Setup(ctx, c.Tracing)
	if err != nil {
		return nil, err
	}
	// Registered first, so it runs last: spans of the shutdown are flushed.
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx)
	})
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
	if c.storeHook != nil {
		st = c.storeHook(st)
	}
	s.registry = newRegistry()
	st = instrumentStore(st, s.registry)
	if s.cache, err = newValidationCache(ctx, &c.Cache, s.registry, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.cache.close)
	if err := tracing.InstrumentRedis(c.Tracing, s.cache.client); err != nil {
		return nil, err
	}
	rpcm := newRPCMetrics(s.registry)

	s.hasher, err = accounts.NewHasher(accounts.HasherConfig{Params: c.hashParams(), MemoryBudget: int64(c.Argon2BudgetMiB) << 20,
		MaxWait: c.Abuse.Argon2MaxWait})
	if err != nil {
		return nil, err
	}
	clients, err := c.Abuse.clients()
	if err != nil {
		return nil, err
	}
	signIn, err := c.Abuse.signInThrottle(s.cache.client, c.Cache.RedisTimeout, s.registry, log)
	if err != nil {
		return nil, err
	}
	auditLog := audit.New(audit.Config{Store: st, Clients: clients, Logger: log})
	s.throttleNotices = webhooks.NewThrottleNotices(st, 0, nil, log)
	acct, err := accounts.New(ctx, accounts.Config{
		Store: st, Hasher: s.hasher, Logger: log, SessionIdle: c.SessionIdle, SessionMax: c.SessionMax,
		Throttle: signIn, Audit: auditLog, Clients: clients, Throttled: s.throttleNotices.Observe,
		// s.tokens is set below, before any call is served.
		Revoked: func(ctx context.Context, r []store.Token) { s.tokens.OwnerRemoved(ctx, r) },
	})
	if err != nil {
		return nil, err
	}
	s.usage = tokens.NewUsageRecorder(st, c.UsageFlush, log)
	rc := tokens.RevocationsConfig{Log: st, Cache: s.cache.Cache, Poll: c.Revocations.Poll, Retention: c.Revocations.Retention,
		Heartbeat: c.Revocations.Heartbeat, MaxStreams: int(c.Revocations.MaxStreams),
		MaxStreamsPerClient: int(c.Revocations.MaxStreamsPerClient), Logger: log}
	if s.cache.revClient != nil {
		// With Redis, a revocation reaches every replica at once; the
		// store's log, read every poll, catches what Redis loses.
		s.revocationFeed = rediscache.NewRevocationFeed(rediscache.RevocationFeedConfig{Client: s.cache.revClient, Logger: log})
		rc.Publish = func(ctx context.Context, v tokens.Revocation) error {
			return s.revocationFeed.Publish(ctx, toFeed(v))
		}
	}
	s.revocations = tokens.NewRevocations(rc)
	uses, rates, err := tokenLimits(st, s.cache.client, c.Cache.RedisTimeout, log)
	if err != nil {
		return nil, err
	}
	tok := tokens.New(tokens.Config{Store: st, Keyring: keys, Format: format, Logger: log, Usage: s.usage, Cache: s.cache.Cache,
		Revocations: s.revocations, WatchRequiresScope: c.Revocations.RequireScope, Audit: auditLog, Uses: uses, Rates: rates, Clients: clients})
	s.tokens = tok
	public := publicMethods
	if c.Revocations.RequireScope {
		// The stream then reads credentials: a token with keymint:watch.
		public = maps.Clone(publicMethods)
		delete(public, keymintv1.TokenService_WatchRevocations_FullMethodName)
	}
	authn := &accounts.Authenticator{Accounts: acct, Tokens: tok, Public: public}

	// The unary chain; ValidateToken runs it composed once (unaryChain), for
	// gRPC and for REST validations alike (validateInProcess).
	unary := []grpc.UnaryServerInterceptor{rpcm.unary(), recoverUnary(log), accessLogUnary(log, hotMethods), except(selfBounded, deadlineUnary(maxRPCDeadline)),
		fault.UnaryServerInterceptor(log), authn.UnaryServerInterceptor()}
	tokenServer := tokens.NewServer(tok)
	validate := validateHandler(unary, tokenServer)
	grpcOpts := grpcTransportOptions()
	if h := tracing.GRPCServerHandler(c.Tracing); h != nil {
		grpcOpts = append(grpcOpts, grpc.StatsHandler(h))
	}
	s.grpc = grpc.NewServer(append(grpcOpts,
		// Handle streams on long-lived workers: a goroutine per stream would
		// start on a small stack and grow it (copy) on every call through
		// the interceptor chain, which cost ~18% of a core at 25k calls/s.
		grpc.NumStreamWorkers(grpcStreamWorkers),
		grpc.UnaryInterceptor(unaryChain(unary, map[string]grpc.UnaryHandler{
			keymintv1.TokenService_ValidateToken_FullMethodName: validate,
		})),
		grpc.ChainStreamInterceptor(rpcm.stream(), recoverStream(log), deadlineStream(maxRPCDeadline, watchMethods),
			fault.StreamServerInterceptor(log), authn.StreamServerInterceptor()),
	)...)
	keymintv1.RegisterTokenServiceServer(s.grpc, tokenServer)
	keymintv1.RegisterAccountServiceServer(s.grpc, accounts.NewServer(acct))
	if err := s.setupWebhooks(ctx, st, auditLog); err != nil {
		return nil, err
	}
	rules, err := c.routeRules()
	if err != nil {
		return nil, err
	}
	// ext_authz and forward-auth validate in process: no hop through the
	// gateway or the gRPC client for the sidecar protocols.
	authzCfg := c.sidecarConfig(tokenServer, rules, clients)
	authv3.RegisterAuthorizationServer(s.grpc, sidecar.NewAuthzServer(authzCfg))
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	if s.grpcLis, err = net.Listen("tcp", c.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen grpc %s: %w", c.GRPCAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.grpcLis.Close() })
	s.grpcLis = limitListener(s.grpcLis, c, clients)
	if c.ServerTLS.CertFile != "" {
		tlsCfg, err := tlsfiles.Server(c.ServerTLS)
		if err != nil {
			return nil, err
		}
		s.grpcLis = tls.NewListener(s.grpcLis, tlsCfg)
	}
	// The in-process gateway reaches gRPC through an in-memory listener: no
	// TCP hop, and no client certificate needed when the port requires mTLS.
	s.gatewayLis = bufconn.Listen(1 << 20)
	s.closers = append(s.closers, func() { _ = s.gatewayLis.Close() })
	if s.httpLis, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen http %s: %w", c.HTTPAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.httpLis.Close() })
	// net/http's own error answers (bad header, 431) are JSON too.
	s.httpLis = gateway.JSONErrors(limitListener(s.httpLis, c, clients))

	// The gateway reaches the API through a real gRPC connection, so REST
	// callers go through the same interceptors as gRPC callers.
	s.conn, err = grpc.NewClient("passthrough:///keymint-in-process",
		append(tracing.GRPCClientOptions(c.Tracing),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.gatewayLis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return nil, fmt.Errorf("dial own grpc listener: %w", err)
	}
	s.closers = append(s.closers, func() { _ = s.conn.Close() })
	gw, err := gateway.New(ctx, gateway.Config{
		Conn:          s.conn,
		Ready:         st.Ping,
		Logger:        log,
		Metrics:       metricsHandler(s.registry),
		Validate:      validateInProcess(validate),
		SecureCookies: c.SecureCookies,
		Clients:       clients,
	})
	if err != nil {
		return nil, fmt.Errorf("build gateway: %w", err)
	}
	// Not an http.ServeMux: it would answer a non-canonical path ("//",
	// "..") with a text/html redirect; the gateway answers it JSON.
	routes := map[string]http.Handler{sidecar.ForwardAuthPath: sidecar.NewForwardAuth(authzCfg)}
	// Introspection validates through the same chain as REST validations.
	introCfg := introspect.Config{Validator: introspect.ValidatorFunc(validateInProcess(validate)),
		Issuer: c.Integrations.issuer(s.httpLis.Addr().String()), Clients: clients}
	routes[introspect.Path] = introspect.New(introCfg)
	routes[introspect.MetadataPath] = introspect.Metadata(introCfg)
	// Runs with or without GitHub configured: reports recorded before a
	// restart are owed their revocations either way.
	s.leaks = secretscan.NewProcessor(secretscan.ProcessorConfig{Store: st, Revoker: tok, Logger: log,
		BeforePass: c.Integrations.leakPassHook})
	if c.Integrations.GitHubKeys != "" {
		if s.githubKeys, err = c.Integrations.githubKeySet(ctx, log); err != nil {
			return nil, err
		}
		routes[secretscan.Path] = secretscan.NewHandler(secretscan.Config{Keys: s.githubKeys, Tokens: tok, Store: st,
			Processor: s.leaks, Logger: log})
	}
	s.http = newHTTPServer(tracing.HTTP(c.Tracing, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})), log)
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

// run serves until ctx ends, then shuts down in order: stop taking requests,
// let in-flight ones finish, flush last-used times, close the store.
func (s *server) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() { _ = s.grpc.Serve(s.gatewayLis) }()
	go func() {
		if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	usageDone := make(chan struct{})
	go func() { s.usage.Run(ctx); close(usageDone) }()
	go s.revocations.Run(ctx)
	if s.revocationFeed != nil {
		go s.revocationFeed.Run(ctx, feedSink{ctx: ctx, revs: s.revocations})
	}
	go s.cache.run(ctx)
	leaksDone := make(chan struct{})
	go func() { s.leaks.Run(ctx); close(leaksDone) }()
	if s.githubKeys != nil {
		go s.githubKeys.Run(ctx)
	}
	webhooksDone := s.runWebhooks(ctx)
	s.log.Info("keymint serving", "http", s.httpLis.Addr().String(), "grpc", s.grpcLis.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("keymint shutting down")
	s.health.Shutdown()
	s.revocations.Close()
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
	<-leaksDone
	<-webhooksDone
	s.tokens.Wait()
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

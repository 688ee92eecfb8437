package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/keymint/keymint/gateway"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/hashworker"
	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/secretscan"
	"github.com/keymint/keymint/services/sidecar"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tokens"
	"github.com/keymint/keymint/services/tracing"
	"github.com/keymint/keymint/services/webhooks"
)

// Option changes how New builds a server beyond its Config.
type Option func(*options)

type options struct {
	wrapStore  func(store.Store) store.Store
	beforePass func(context.Context) bool
	onServing  func(http, grpc net.Addr)
}

// OnServing is called with the bound listen addresses once the server
// serves (make run's banner prints them).
func OnServing(f func(http, grpc net.Addr)) Option {
	return func(o *options) { o.onServing = f }
}

// WithStoreWrapper wraps the store before anything uses it (under the
// metrics decorator): tests count or fail its calls this way.
func WithStoreWrapper(wrap func(store.Store) store.Store) Option {
	return func(o *options) { o.wrapStore = wrap }
}

// WithLeakPassHook runs before each pass of the leak report processor;
// false skips the pass (tests hold reports back this way).
func WithLeakPassHook(hook func(context.Context) bool) Option {
	return func(o *options) { o.beforePass = hook }
}

// Run validates c, builds the server and serves until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger, opts ...Option) error {
	if err := c.Validate(); err != nil {
		return err
	}
	tuneGC()
	s, err := New(ctx, c, log, opts...)
	if err != nil {
		return err
	}
	// Nothing at start hashes, so the limit can wait for the hasher's slots.
	applyMemoryLimit(&s.cfg, int64(s.hasher.Slots())*int64(c.Argon2MemoryKiB)<<10, log)
	return s.Run(ctx)
}

// Server is a built keymint serve: its store, services and bound
// listeners. Run serves them.
type Server struct {
	cfg     Config
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
	// hashWorker computes the hasher's keys; nil when hashing inline.
	hashWorker *hashworker.Worker

	// leaks revokes what recorded secret-scanning reports name;
	// githubKeys (nil when off) verifies GitHub's reports.
	leaks      *secretscan.Processor
	githubKeys *secretscan.KeySet
	// dispatcher and expiry deliver webhooks; nil when webhooks are off.
	dispatcher *webhooks.Dispatcher
	expiry     *webhooks.Scheduler
	// throttleNotices aggregates refused sign-ins into signin.throttled.
	throttleNotices *webhooks.ThrottleNotices
	onServing       func(http, grpc net.Addr)
	stopOnce        sync.Once
}

// New builds the server and binds its listeners; c is taken as valid
// (Validate). Run serves it; a server never run is released by Run on a
// cancelled context.
func New(ctx context.Context, c Config, log *slog.Logger, opts ...Option) (_ *Server, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{cfg: c, log: log, onServing: o.onServing}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	tc := c.tracing("keymint")
	stopTracing, err := tracing.Setup(ctx, tc)
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
	st, err := openStore(ctx, c.StoreConfig, c.readReplica(), log)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = st.Close() })
	if o.wrapStore != nil {
		st = o.wrapStore(st)
	}
	s.registry = newRegistry()
	st = instrumentStore(st, s.registry)
	if s.cache, err = newValidationCache(ctx, &c.Cache, s.registry, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.cache.close)
	for _, rc := range []redis.UniversalClient{s.cache.client, s.cache.signInClient} {
		if err := tracing.InstrumentRedis(tc, rc); err != nil {
			return nil, err
		}
	}
	rpcm := newRPCMetrics(s.registry)

	if s.hasher, err = s.newHasher(log); err != nil {
		return nil, err
	}
	clients, err := c.Abuse.clients()
	if err != nil {
		return nil, err
	}
	signIn, err := c.Abuse.signInThrottle(s.cache.signInClient, c.Cache.signInRedisTimeout(), s.registry, log)
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
	s.revocations = tokens.NewRevocations(s.revocationsConfig(st))
	registerRevocationMetrics(s.registry, s.revocations)
	uses, rates, err := tokenLimits(st, s.cache.client, c.Cache.RedisTimeout, log)
	if err != nil {
		return nil, err
	}
	tok := tokens.New(tokens.Config{Store: st, Keyring: keys, Format: format, Logger: log, Usage: s.usage, Cache: s.cache.Cache,
		Revocations: s.revocations, WatchRequiresScope: c.Revocations.RequireScope, Audit: auditLog, Uses: uses, Rates: rates, Clients: clients})
	s.tokens = tok
	authn := &accounts.Authenticator{Accounts: acct, Tokens: tok, Public: publicMethodsFor(c.Revocations.RequireScope)}

	unary := unaryInterceptors(rpcm, log, authn)
	tokenServer := tokens.NewServer(tok)
	// REST validations and introspection call validate in process (the
	// HTTP span covers them); gRPC's hot methods run the same chain behind
	// the gRPC span, composed once and registered as the methods'
	// handlers (composedMethod).
	validate := validateHandler(inProcessInterceptors(rpcm, log, authn), tokenServer)
	hot := unary
	if tc.Enabled() {
		hot = append([]link{{run: tracing.GRPCUnaryServer(tc, passOn)}}, unary...)
	}
	streams := streamInterceptors(rpcm, log, authn)
	if ts := tracing.GRPCStreamServer(tc); ts != nil {
		streams = append([]grpc.StreamServerInterceptor{ts}, streams...)
	}
	s.grpc = grpc.NewServer(append(grpcTransportOptions(),
		// Handle streams on long-lived workers: a goroutine per stream would
		// start on a small stack and grow it (copy) on every call through
		// the interceptor chain, which cost ~18% of a core at 25k calls/s.
		grpc.NumStreamWorkers(grpcStreamWorkers),
		// The gRPC server span wraps the whole chain; REST validations,
		// called in process behind the same chain, have the HTTP span.
		grpc.UnaryInterceptor(tracing.GRPCUnaryServer(tc, unaryChain(runs(unary)))),
		grpc.ChainStreamInterceptor(streams...),
	)...)
	s.grpc.RegisterService(withMethod(&keymintv1.TokenService_ServiceDesc, "ValidateToken",
		composedMethod[keymintv1.ValidateTokenRequest](validateHandler(hot, tokenServer))), tokenServer)
	keymintv1.RegisterAccountServiceServer(s.grpc, accounts.NewServer(acct))
	if err := s.setupWebhooks(ctx, st, auditLog); err != nil {
		return nil, err
	}
	rules, err := c.RouteRules()
	if err != nil {
		return nil, err
	}
	// ext_authz and forward-auth validate in process: no hop through the
	// gateway or the gRPC client for the sidecar protocols.
	authzCfg := c.SidecarConfig(tokenServer, rules, clients, c.Integrations.IdentityBody)
	authz := sidecar.NewAuthzServer(authzCfg)
	s.grpc.RegisterService(withMethod(&authv3.Authorization_ServiceDesc, "Check",
		composedMethod[authv3.CheckRequest](checkHandler(hot, authz))), authz)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	if err := s.listen(clients); err != nil {
		return nil, err
	}
	// The gateway reaches the API through a real gRPC connection, so REST
	// callers go through the same interceptors as gRPC callers.
	s.conn, err = grpc.NewClient("passthrough:///keymint-in-process",
		append(tracing.GRPCClientOptions(tc),
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
	r := routes{forwardAuth: sidecar.NewForwardAuth(authzCfg),
		// Introspection validates through the same chain as REST validations.
		introspect: introspect.Config{Validator: introspect.ValidatorFunc(validateInProcess(validate)),
			Issuer: c.Integrations.issuer(s.httpLis.Addr().String()), Clients: clients}}
	// Runs with or without GitHub configured: reports recorded before a
	// restart are owed their revocations either way.
	s.leaks = secretscan.NewProcessor(secretscan.ProcessorConfig{Store: st, Revoker: tok, Logger: log, BeforePass: o.beforePass})
	if c.Integrations.GitHubKeys != "" {
		if s.githubKeys, err = c.Integrations.githubKeySet(ctx, log); err != nil {
			return nil, err
		}
		r.secretScanning = secretscan.NewHandler(secretscan.Config{Keys: s.githubKeys, Tokens: tok, Store: st,
			Processor: s.leaks, Logger: log})
	}
	s.http = newHTTPServer(tracing.HTTP(tc, router(gw, r)), log)
	return s, nil
}

// revocationsConfig is the revocation follower's configuration; with
// Redis, a revocation reaches every replica at once, and the store's log,
// read every poll, catches what Redis loses.
func (s *Server) revocationsConfig(st store.Store) tokens.RevocationsConfig {
	c := &s.cfg.Revocations
	rc := tokens.RevocationsConfig{Log: st, Cache: s.cache.Cache, Poll: c.Poll, Retention: c.Retention,
		Heartbeat: c.Heartbeat, MaxStreams: int(c.MaxStreams), MaxStreamsPerClient: int(c.MaxStreamsPerClient),
		PublishQueue: int(c.PublishQueue), Invalidate: s.cache.Cache.Invalidate, Logger: s.log}
	if s.cache.revClient != nil {
		s.revocationFeed = rediscache.NewRevocationFeed(rediscache.RevocationFeedConfig{Client: s.cache.revClient,
			Timeout: s.cfg.Cache.revocationTimeout(), Logger: s.log})
		rc.Publish = func(ctx context.Context, v tokens.Revocation) error {
			return s.revocationFeed.Publish(ctx, toFeed(v))
		}
	}
	return rc
}

// listen binds the gRPC port (TLS when configured), the in-memory
// listener of the in-process gateway, and the HTTP port.
func (s *Server) listen(clients *clientip.Resolver) error {
	c := &s.cfg
	var err error
	if s.grpcLis, err = net.Listen("tcp", c.GRPCAddr); err != nil {
		return fmt.Errorf("listen grpc %s: %w", c.GRPCAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.grpcLis.Close() })
	s.grpcLis = limitListener(s.grpcLis, c.ConnLimitConfig, clients)
	if c.TLSCertFile != "" {
		tlsCfg, err := tlsfiles.Server(c.serverTLS())
		if err != nil {
			return err
		}
		s.grpcLis = tls.NewListener(s.grpcLis, tlsCfg)
	}
	// The in-process gateway reaches gRPC through an in-memory listener: no
	// TCP hop, and no client certificate needed when the port requires mTLS.
	s.gatewayLis = bufconn.Listen(1 << 20)
	s.closers = append(s.closers, func() { _ = s.gatewayLis.Close() })
	if s.httpLis, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return fmt.Errorf("listen http %s: %w", c.HTTPAddr, err)
	}
	s.closers = append(s.closers, func() { _ = s.httpLis.Close() })
	// net/http's own error answers (bad header, 431) are JSON too.
	s.httpLis = gateway.JSONErrors(limitListener(s.httpLis, c.ConnLimitConfig, clients))
	return nil
}

// HTTPAddr and GRPCAddr are the bound listen addresses (port 0 resolved).
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// GRPCAddr is the bound gRPC listen address.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// RegisterService adds a gRPC service before Run (grpc.ServiceRegistrar);
// it runs behind the server's interceptor chains.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// Handler is the HTTP handler the HTTP port serves.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// HasherStats is the password hasher's slots and waits.
func (s *Server) HasherStats() accounts.HasherStats { return s.hasher.Stats() }

// HashWorkerStats describes the hashing worker process (zero when
// hashing inline).
func (s *Server) HashWorkerStats() hashworker.Stats {
	if s.hashWorker == nil {
		return hashworker.Stats{}
	}
	return s.hashWorker.Stats()
}

// newHasher is the password hasher of --hash-worker: with "process", its
// keys computed by a worker process at nice 19 (services/hashworker),
// unless this binary cannot start one: then inline, said in one log line.
func (s *Server) newHasher(log *slog.Logger) (*accounts.Hasher, error) {
	c := s.cfg
	hc := accounts.HasherConfig{Params: c.HashParams(), MemoryBudget: int64(c.Argon2BudgetMiB) << 20, MaxWait: c.Abuse.Argon2MaxWait}
	h, err := accounts.NewHasher(hc)
	if err != nil || c.HashWorker != HashWorkerProcess {
		return h, err
	}
	w, err := hashworker.New(hashworker.Config{Slots: h.Slots(), MemoryKiB: uint32(c.Argon2MemoryKiB), Logger: log})
	if err != nil {
		log.Warn("password hashing runs inline: the hash worker process cannot be started", "err", err.Error())
		return h, nil
	}
	s.hashWorker = w
	// Closers run once the HTTP and gRPC servers have drained, so the
	// sign-ins in flight have had their hashes.
	s.closers = append(s.closers, func() { w.Close(5 * time.Second) })
	hc.Deriver = w
	return accounts.NewHasher(hc)
}

// Revocations is this replica's revocation follower, for tests that look
// inside (its publish queue).
func (s *Server) Revocations() *tokens.Revocations { return s.revocations }

// WaitTokens waits for the TokenService's background work (revocations of
// reported leaks) to finish.
func (s *Server) WaitTokens() { s.tokens.Wait() }

// FlushThrottleNotices sends the signin.throttled events aggregated so far.
func (s *Server) FlushThrottleNotices(ctx context.Context) error { return s.throttleNotices.Flush(ctx) }

// Run serves until ctx ends, then shuts down in order: stop taking requests,
// let in-flight ones finish, flush last-used times, close the store.
func (s *Server) Run(ctx context.Context) error {
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
	go s.revocations.RunPublisher(ctx)
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
	releaseStartupMemory()
	s.log.Info("keymint serving", "http", s.httpLis.Addr().String(), "grpc", s.grpcLis.Addr().String())
	if s.onServing != nil {
		s.onServing(s.httpLis.Addr(), s.grpcLis.Addr())
	}

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

func (s *Server) close() {
	s.stopOnce.Do(func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	})
}

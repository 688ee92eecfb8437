package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/sidecar"
	"github.com/keymint/keymint/services/tracing"
	"google.golang.org/grpc"
)

// SidecarConfig is `keymint sidecar`.
type SidecarConfig struct {
	SidecarGRPCAddr string        `name:"sidecar-grpc-addr" env:"KEYMINT_SIDECAR_GRPC_ADDR" default:"127.0.0.1:9191" help:"Sidecar ext_authz (gRPC) listen address."`
	SidecarHTTPAddr string        `name:"sidecar-http-addr" env:"KEYMINT_SIDECAR_HTTP_ADDR" default:"127.0.0.1:9192" help:"Sidecar forward-auth and health (HTTP) listen address."`
	CentralAddr     string        `name:"central-addr" env:"KEYMINT_CENTRAL_ADDR" help:"The central keymint's gRPC address (required)."`
	Central         DialTLSConfig `embed:"" prefix:"central-" envprefix:"KEYMINT_CENTRAL_"`
	SidecarCacheTTL time.Duration `name:"sidecar-cache-ttl" env:"KEYMINT_SIDECAR_CACHE_TTL" default:"30s" help:"How long the sidecar reuses an answer while the revocation stream is down."`
	// CentralWatchToken is sent with WatchRevocations
	// (KEYMINT_CENTRAL_WATCH_TOKEN only: never a flag, flags show in ps).
	CentralWatchToken string `kong:"-"`
	RoutesConfig
	LogConfig
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KEYMINT_SHUTDOWN_TIMEOUT" default:"15s" help:"How long in-flight requests get to finish on shutdown."`
	ProxyConfig
	IdentityConfig
	TracingConfig
	MaxConnsConfig
}

// Validate returns every problem of c at once (Problems), or nil.
func (c *SidecarConfig) Validate() error {
	var p Problems
	if c.CentralAddr == "" {
		p = append(p, "central-addr is required: the central keymint's gRPC address")
	}
	p = append(p, c.Central.problems("central-")...)
	p = append(p, positive(map[string]time.Duration{"sidecar-cache-ttl": c.SidecarCacheTTL, "shutdown-timeout": c.ShutdownTimeout})...)
	p = append(p, c.RoutesConfig.problems()...)
	p = append(p, c.LogConfig.problems()...)
	p = append(p, c.ProxyConfig.problems()...)
	p = append(p, c.IdentityConfig.problems()...)
	p = append(p, c.TracingConfig.problems()...)
	p = append(p, c.MaxConnsConfig.problems()...)
	return p.orNil()
}

// RunSidecar validates c and runs keymint next to a resource service: ext_authz (gRPC) and
// forward-auth (HTTP) on loopback, answering from its own cache, asking the
// central keymint on a miss, and dropping revoked tokens as the central
// server pushes them. With the central server unreachable it answers only
// from cache; an unknown token is never allowed.
//
// The sidecar has no Redis tier: keymint's Redis entries are keyed by the
// pepper HMAC, and the pepper stays on the central servers.
func RunSidecar(ctx context.Context, c SidecarConfig, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	tc := c.tracing("keymint-sidecar")
	stopTracing, err := tracing.Setup(ctx, tc)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx)
	}()
	rules, err := c.RouteRules()
	if err != nil {
		return err
	}
	creds, err := c.Central.credentials(c.CentralAddr)
	if err != nil {
		return err
	}
	v, err := client.NewValidator(ctx, client.ValidatorConfig{
		Target:      c.CentralAddr,
		DialOptions: append(tracing.GRPCClientOptions(tc), grpc.WithTransportCredentials(creds)),
		TTL:         c.SidecarCacheTTL,
		WatchToken:  c.CentralWatchToken,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	defer v.Close()

	// Forward-auth believes X-Forwarded-For from these proxies (nginx,
	// Traefik) when it checks a token's allowed CIDRs.
	clients, err := c.clients()
	if err != nil {
		return err
	}
	cfg := c.SidecarConfig(v, rules, clients, c.IdentityBody)
	unary := unaryChain([]grpc.UnaryServerInterceptor{recoverUnary(log), deadlineUnary(maxRPCDeadline)})
	gs := grpc.NewServer(append(grpcTransportOptions(), grpc.UnaryInterceptor(tracing.GRPCUnaryServer(tc, unary)))...)
	authv3.RegisterAuthorizationServer(gs, sidecar.NewAuthzServer(cfg))
	gl, err := net.Listen("tcp", c.SidecarGRPCAddr)
	if err != nil {
		return fmt.Errorf("listen sidecar grpc %s: %w", c.SidecarGRPCAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(sidecar.ForwardAuthPath, sidecar.NewForwardAuth(cfg))
	// Introspection from the sidecar's cache; limited tokens still reach
	// the central server on every use (noStore).
	introCfg := introspect.Config{Validator: v, Issuer: c.issuer(c.SidecarHTTPAddr), Clients: clients}
	mux.Handle(introspect.Path, introspect.New(introCfg))
	mux.Handle(introspect.MetadataPath, introspect.Metadata(introCfg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	// Ready once the revocation stream is live: before that, cached answers
	// could miss a revocation.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !v.Subscribed() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"unavailable"}`)
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	hl, err := net.Listen("tcp", c.SidecarHTTPAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("listen sidecar http %s: %w", c.SidecarHTTPAddr, err)
	}
	hs := newHTTPServer(tracing.HTTP(tc, mux), log)
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(totalLimitListener(gl, c.MaxConnsConfig)) }()
	go func() {
		if err := hs.Serve(totalLimitListener(hl, c.MaxConnsConfig)); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	log.Info("keymint sidecar serving", "ext_authz", gl.Addr().String(), "forward_auth", hl.Addr().String(), "central", c.CentralAddr)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
	}
	return err
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/introspect"
	"github.com/keymint/keymint/services/sidecar"
	"github.com/keymint/keymint/services/tlsfiles"
	"github.com/keymint/keymint/services/tracing"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// runSidecar runs keymint next to a resource service: ext_authz (gRPC) and
// forward-auth (HTTP) on loopback, answering from its own cache, asking the
// central keymint on a miss, and dropping revoked tokens as the central
// server pushes them. With the central server unreachable it answers only
// from cache; an unknown token is never allowed.
//
// The sidecar has no Redis tier: keymint's Redis entries are keyed by the
// pepper HMAC, and the pepper stays on the central servers.
func runSidecar(ctx context.Context, args []string, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c, "sidecar", "routes-file", "route", "strip-authorization", "log-format", "log-level", "shutdown-timeout",
		"trusted-proxies", "forward-auth-style", "routes-ignore-case",
		"issuer", "forward-auth-identity-body", "otlp-endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	log := c.logger(stderr)
	c.Tracing.ServiceName = "keymint-sidecar"
	stopTracing, err := tracing.Setup(ctx, c.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx)
	}()
	rules, err := c.routeRules()
	if err != nil {
		return err
	}
	creds, err := c.centralCredentials()
	if err != nil {
		return err
	}
	v, err := client.NewValidator(ctx, client.ValidatorConfig{
		Target:      c.CentralAddr,
		DialOptions: append(tracing.GRPCClientOptions(c.Tracing), grpc.WithTransportCredentials(creds)),
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
	clients, err := c.Abuse.clients()
	if err != nil {
		return err
	}
	cfg := c.sidecarConfig(v, rules, clients)
	gsOpts := append(grpcTransportOptions(), grpc.ChainUnaryInterceptor(recoverUnary(log), deadlineUnary(maxRPCDeadline)))
	if h := tracing.GRPCServerHandler(c.Tracing); h != nil {
		gsOpts = append(gsOpts, grpc.StatsHandler(h))
	}
	gs := grpc.NewServer(gsOpts...)
	authv3.RegisterAuthorizationServer(gs, sidecar.NewAuthzServer(cfg))
	gl, err := net.Listen("tcp", c.SidecarGRPCAddr)
	if err != nil {
		return fmt.Errorf("listen sidecar grpc %s: %w", c.SidecarGRPCAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(sidecar.ForwardAuthPath, sidecar.NewForwardAuth(cfg))
	// Introspection from the sidecar's cache; limited tokens still reach
	// the central server on every use (noStore).
	introCfg := introspect.Config{Validator: v, Issuer: c.Integrations.issuer(c.SidecarHTTPAddr), Clients: clients}
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
	hs := newHTTPServer(tracing.HTTP(c.Tracing, mux), log)
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(gl) }()
	go func() {
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
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

// centralCredentials: plaintext unless a CA, a client certificate or
// --central-tls asks for TLS; files are re-read when they change.
func (c *Config) centralCredentials() (credentials.TransportCredentials, error) {
	t := c.CentralTLS
	if !c.CentralTLSOn && t.CAFile == "" && t.CertFile == "" {
		return insecure.NewCredentials(), nil
	}
	name := c.CentralServerName
	if name == "" {
		host, _, err := net.SplitHostPort(c.CentralAddr)
		if err != nil {
			host = c.CentralAddr
		}
		name = host
	}
	cfg, err := tlsfiles.Client(t, name)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/keymint/keymint/gateway"
)

// GatewayConfig is `keymint gateway`: the REST facade alone, in front of a
// keymint gRPC server elsewhere (keymint serve runs the same gateway in
// process).
type GatewayConfig struct {
	HTTPAddr     string        `name:"http-addr" env:"KEYMINT_HTTP_ADDR" default:"127.0.0.1:8080" help:"REST, web page and health listen address."`
	GRPCEndpoint string        `name:"grpc-endpoint" env:"KEYMINT_GRPC_ENDPOINT" default:"127.0.0.1:9090" help:"keymint gRPC server the gateway forwards to."`
	Dial         DialTLSConfig `embed:"" prefix:"grpc-endpoint-" envprefix:"KEYMINT_GRPC_ENDPOINT_"`
	LogConfig
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KEYMINT_SHUTDOWN_TIMEOUT" default:"15s" help:"How long in-flight requests get to finish on shutdown."`
	SecureCookies   bool          `name:"secure-cookies" env:"KEYMINT_SECURE_COOKIES" help:"Session cookie Secure and named __Host-keymint_session even over plain HTTP, for TLS ended by a proxy."`
	ProxyConfig
	ConnLimitConfig
}

// Validate returns every problem of c at once (Problems), or nil.
func (c *GatewayConfig) Validate() error {
	p := Problems(c.LogConfig.problems())
	p = append(p, positive(map[string]time.Duration{"shutdown-timeout": c.ShutdownTimeout})...)
	p = append(p, c.ProxyConfig.problems()...)
	p = append(p, c.ConnLimitConfig.problems()...)
	p = append(p, c.Dial.problems("grpc-endpoint-")...)
	return p.orNil()
}

// RunGateway validates c and serves the REST gateway until ctx ends.
func RunGateway(ctx context.Context, c GatewayConfig, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	clients, err := c.clients()
	if err != nil {
		return err
	}
	creds, err := c.Dial.credentials(c.GRPCEndpoint)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(c.GRPCEndpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.GRPCEndpoint, err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ready := func(ctx context.Context) error {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return errors.New("upstream not serving")
		}
		return nil
	}
	gw, err := gateway.New(ctx, gateway.Config{Conn: conn, Ready: ready, Logger: log, SecureCookies: c.SecureCookies, Clients: clients})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", c.HTTPAddr, err)
	}
	hs := newHTTPServer(gw, log)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(gateway.JSONErrors(limitListener(lis, c.ConnLimitConfig, clients))) }()
	log.Info("keymint gateway serving", "http", lis.Addr().String(), "grpc_endpoint", c.GRPCEndpoint)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	return hs.Shutdown(sctx)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/keymint/keymint/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// runGateway serves the REST facade alone, forwarding to a keymint gRPC
// server elsewhere (keymint serve runs the same gateway in process).
func runGateway(ctx context.Context, args []string, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindFlags(fs, &c, "http-addr", "grpc-endpoint", "log-format", "log-level", "shutdown-timeout", "secure-cookies", "trusted-proxies")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	log := c.logger(stderr)
	clients, err := c.Abuse.clients()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(c.GRPCEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	go func() { errc <- hs.Serve(gateway.JSONErrors(lis)) }()
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

package server

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/connlimit"
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

// MaxConnsConfig caps each of a command's ports' open connections.
type MaxConnsConfig struct {
	MaxConns uint `name:"max-connections" env:"KEYMINT_MAX_CONNECTIONS" default:"${max_connections}" help:"Open connections each port keeps at most; beyond, new ones wait in the listen backlog."`
}

// ConnLimitConfig caps each port's open connections in total and per
// client address: the ports clients reach directly (serve, gateway).
type ConnLimitConfig struct {
	MaxConnsConfig
	MaxConnsPerIP uint `name:"max-connections-per-ip" env:"KEYMINT_MAX_CONNECTIONS_PER_IP" default:"${max_connections_per_ip}" help:"Open connections per client address on each port (trusted proxies and gRPC peers exempt); beyond, new ones are closed."`
}

func (c *MaxConnsConfig) problems() []string {
	if c.MaxConns == 0 {
		return []string{"max-connections: want at least 1"}
	}
	return nil
}

func (c *ConnLimitConfig) problems() []string {
	p := c.MaxConnsConfig.problems()
	if c.MaxConnsPerIP == 0 {
		p = append(p, "max-connections-per-ip: want at least 1")
	}
	return p
}

// limitListener caps l's open connections (total and per client address);
// trusted proxies and gRPC peers, which carry many clients, are exempt
// from the per-address cap.
func limitListener(l net.Listener, c ConnLimitConfig, clients *clientip.Resolver) net.Listener {
	perIP := int(c.MaxConnsPerIP)
	if perIP == 0 {
		perIP = defaultMaxConnsPerIP
	}
	return connlimit.Listen(l, connlimit.Config{Total: maxConns(c.MaxConnsConfig), PerAddr: perIP,
		Exempt: func(a netip.Addr) bool { return clients.Trusted(a) || clients.TrustedPeer(a) }})
}

// totalLimitListener caps l's open connections in total only: the
// sidecar's clients are the proxy beside it, one address that may hold
// a connection per request in flight (nginx's auth_request opens one per
// subrequest), which a per-address cap would refuse.
func totalLimitListener(l net.Listener, c MaxConnsConfig) net.Listener {
	return connlimit.Listen(l, connlimit.Config{Total: maxConns(c)})
}

// maxConns is c's total cap, the default when unset (library use).
func maxConns(c MaxConnsConfig) int {
	if c.MaxConns == 0 {
		return defaultMaxConns
	}
	return int(c.MaxConns)
}

// newHTTPServer is an HTTP server with the listener limits.
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

package tracing

import (
	"context"
	"net"
	"syscall"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BenchmarkGRPCServerSpan: a unary call on a real loopback gRPC server with
// tracing off, with otelgrpc's stats handler (what keymint had) and with
// GRPCUnaryServer, Setup sampling 1 % of root spans as the tracing bench
// runs it, exporting to a receiver in the test. cpu-ns/op is the process's
// CPU (client and server) per call; the differences between the cases are
// the server's tracing cost. Load independent: instructions per call, from
// the difference of two runs under valgrind --tool=callgrind with
// GODEBUG=asyncpreemptoff=1, -test.cpu 1 and -test.benchtime 1000x / 3000x.
func BenchmarkGRPCServerSpan(b *testing.B) {
	_, on, _ := setupExport(b, "parentbased_traceidratio", "0.01", "5000") // the SDK's default export delay
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	cases := []struct {
		name string
		opts []grpc.ServerOption
	}{
		{"off", []grpc.ServerOption{grpc.UnaryInterceptor(pass)}},
		{"otelgrpc", []grpc.ServerOption{grpc.UnaryInterceptor(pass), grpc.StatsHandler(otelgrpc.NewServerHandler())}},
		{"interceptor", []grpc.ServerOption{grpc.UnaryInterceptor(GRPCUnaryServer(on, pass))}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			gs := grpc.NewServer(c.opts...)
			healthpb.RegisterHealthServer(gs, health.NewServer())
			go func() { _ = gs.Serve(lis) }()
			defer gs.Stop()
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := healthpb.NewHealthClient(conn)
			if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuNanos()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuNanos is the CPU time (user + system) the process has used.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

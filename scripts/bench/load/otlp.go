package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// otlpSink is an OTLP/gRPC trace collector that counts the spans it is
// sent and keeps nothing: the tracing scenario's real receiver.
type otlpSink struct {
	collectortrace.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (s *otlpSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// runOTLP serves an OTLP trace collector until SIGTERM, printing its
// address first and the span count at the end.
func runOTLP(args []string) error {
	fs := flag.NewFlagSet("otlp", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	sink := &otlpSink{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, sink)
	fmt.Println(lis.Addr().String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; gs.GracefulStop() }()
	err = gs.Serve(lis)
	fmt.Fprintf(os.Stderr, "otlp: %d spans received\n", sink.spans.Load())
	return err
}

// reportTracing prints, for each protocol the tracing scenario measured,
// the server CPU per call with tracing on at 1 % sampling over tracing
// off: the median of the per-round ratios (rounds alternate the two).
func reportTracing(byName map[string][]Result) {
	for _, p := range []struct{ label, off, on string }{
		{"gRPC ValidateToken (L1)", "grpc-trace-off", "grpc-trace-1pct"},
		{"REST validate (L1)", "rest-trace-off", "rest-trace-1pct"},
	} {
		offs, ons := byName[p.off], byName[p.on]
		var cs, qs []float64
		for i := range min(len(offs), len(ons)) {
			a, b := offs[i], ons[i]
			if a.RPS > 0 && b.RPS > 0 && a.ServerCPU > 0 && b.ServerCPU > 0 {
				cs = append(cs, (b.ServerCPU/b.RPS)/(a.ServerCPU/a.RPS))
				qs = append(qs, b.RPS/a.RPS)
			}
		}
		if len(cs) == 0 {
			continue
		}
		slices.Sort(cs)
		slices.Sort(qs)
		c := cs[len(cs)/2]
		verdict := "meets"
		if c > 1.05 {
			verdict = "ABOVE"
		}
		fmt.Printf("tracing %-28s CPU per call on (1 %% sampled) / off %.3f (rounds %s; target <= 1.05: %s); calls/s ratio %.3f\n",
			p.label, c, fmtList(cs), verdict, qs[len(qs)/2])
	}
}

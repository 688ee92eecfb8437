package tracing

import (
	"context"
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The gRPC server spans are made by interceptors rather than otelgrpc's
// stats handler. Any stats handler makes grpc-go copy the incoming
// metadata and build and dispatch seven events per call (Begin, InHeader,
// InPayload, OutHeader, OutPayload, OutTrailer, End), and otelgrpc's
// copies the metadata again and builds the span's and the metrics'
// attributes on every call, sampled or not. Here a call that is not
// sampled costs a metadata lookup (traceparent) and, for a
// root, the sampler's decision (sampling.go); attributes are built for
// recorded spans only. Span names and attributes follow otelgrpc's
// (semantic conventions v1.43): "package.Service/Method", rpc.system.name,
// rpc.method, rpc.response.status_code, server.address / server.port.

// serverSpan is what the server interceptors and the HTTP middleware
// share: the tracer and the span start options, built once.
type serverSpan struct {
	tracer trace.Tracer
	opts   []trace.SpanStartOption
}

func newServerSpan() *serverSpan {
	return &serverSpan{
		tracer: otel.Tracer(instrumentation),
		opts:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)},
	}
}

// start starts a call's server span under the caller's trace context, if
// any (traced: the call carries trace context headers; extract reads
// them into ctx). A call the sampler drops gets a non-recording span: its
// context still propagates.
func (s *serverSpan) start(ctx context.Context, name string, traced bool, extract func(context.Context) context.Context) (context.Context, trace.Span) {
	r := active.Load()
	if r == nil || traced {
		return s.tracer.Start(extract(ctx), name, s.opts...)
	}
	return r.startRoot(ctx, s.tracer, name, s.opts)
}

// startGRPC starts a gRPC call's server span. A call without traceparent
// is a root, and the propagator is not run for it: its baggage, if any, is
// not taken (baggage comes with a trace context; a metadata lookup that
// misses costs as much as the dropped root's span context).
func (s *serverSpan) startGRPC(ctx context.Context, fullMethod string) (context.Context, trace.Span) {
	traced := len(metadata.ValueFromIncomingContext(ctx, "traceparent")) > 0
	return s.start(ctx, strings.TrimPrefix(fullMethod, "/"), traced, extractGRPC)
}

func extractGRPC(ctx context.Context) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, incomingCarrier{ctx})
}

// end records the call's outcome on a recorded span and ends it.
func end(ctx context.Context, span trace.Span, fullMethod string, err error) {
	if !span.IsRecording() {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, semconv.RPCSystemNameGRPC, semconv.RPCMethod(strings.TrimPrefix(fullMethod, "/")),
		semconv.RPCResponseStatusCode(canonicalCode(st.Code())))
	if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
		attrs = append(attrs, serverAddr(p.LocalAddr)...)
	}
	span.SetAttributes(attrs...)
	// A server's own failures are errors; a caller's (a bad argument, a
	// missing credential) are not, as otelgrpc and the conventions have it.
	switch st.Code() {
	case grpccodes.Unknown, grpccodes.DeadlineExceeded, grpccodes.Unimplemented, grpccodes.Internal,
		grpccodes.Unavailable, grpccodes.DataLoss:
		span.SetStatus(codes.Error, st.Message())
	}
	span.End()
}

// GRPCUnaryServer returns next behind a server span per call: the span is
// started before next runs, so next and what it calls (the cache, the
// store) run in the call's trace. next itself when tracing is off.
func GRPCUnaryServer(c Config, next grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if !c.Enabled() {
		return next
	}
	s := newServerSpan()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, span := s.startGRPC(ctx, info.FullMethod)
		resp, err := next(ctx, req, info, handler)
		end(ctx, span, info.FullMethod, err)
		return resp, err
	}
}

// GRPCStreamServer returns the stream interceptor that makes a server span
// per stream, to run first in the chain; nil when tracing is off.
func GRPCStreamServer(c Config) grpc.StreamServerInterceptor {
	if !c.Enabled() {
		return nil
	}
	s := newServerSpan()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, span := s.startGRPC(ss.Context(), info.FullMethod)
		err := handler(srv, &tracedStream{ServerStream: ss, ctx: ctx})
		end(ctx, span, info.FullMethod, err)
		return err
	}
}

// tracedStream is a server stream whose context carries the stream's span.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tracedStream) Context() context.Context { return s.ctx }

// incomingCarrier reads the trace context from a call's incoming metadata
// key by key, without copying the whole metadata.
type incomingCarrier struct{ ctx context.Context }

func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (incomingCarrier) Set(string, string) {}

func (c incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// serverAddr is the server.address and server.port of the address the
// call came in on.
func serverAddr(a net.Addr) []attribute.KeyValue {
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(a.String())}
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(h)}
	}
	return []attribute.KeyValue{semconv.ServerAddress(h), semconv.ServerPort(port)}
}

// canonicalCode is a gRPC status code's name in the conventions' spelling
// (grpc-go's String is CamelCase: Canceled, InvalidArgument).
func canonicalCode(c grpccodes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE(" + strconv.Itoa(int(c)) + ")"
}

var codeNames = [...]string{
	grpccodes.OK: "OK", grpccodes.Canceled: "CANCELLED", grpccodes.Unknown: "UNKNOWN",
	grpccodes.InvalidArgument: "INVALID_ARGUMENT", grpccodes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	grpccodes.NotFound: "NOT_FOUND", grpccodes.AlreadyExists: "ALREADY_EXISTS",
	grpccodes.PermissionDenied: "PERMISSION_DENIED", grpccodes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	grpccodes.FailedPrecondition: "FAILED_PRECONDITION", grpccodes.Aborted: "ABORTED",
	grpccodes.OutOfRange: "OUT_OF_RANGE", grpccodes.Unimplemented: "UNIMPLEMENTED",
	grpccodes.Internal: "INTERNAL", grpccodes.Unavailable: "UNAVAILABLE", grpccodes.DataLoss: "DATA_LOSS",
	grpccodes.Unauthenticated: "UNAUTHENTICATED",
}

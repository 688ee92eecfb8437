// Package tracing turns OpenTelemetry traces on for one keymint process:
// an OTLP/gRPC exporter, W3C trace context in and out, and the span
// sources the rest of keymint plugs in (gRPC server interceptors, a gRPC
// client stats handler, an HTTP middleware, the pgx tracer, Redis hooks,
// password-hash spans).
//
// Off by default: without an endpoint nothing is installed, the global
// tracer provider stays OpenTelemetry's no-op one and the propagator
// injects nothing, so the validation path pays a no-op span per store
// query at most. No span attribute ever holds a secret: HTTP spans carry
// the method and status only (a path may hold a token id or, on seed
// routes, a secret), SQL spans the statement without its parameters,
// Redis spans no command arguments, gRPC spans no metadata.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// instrumentation names keymint's own spans.
const instrumentation = "github.com/keymint/keymint"

// Config is the tracing configuration of a process.
type Config struct {
	// Endpoint is the OTLP/gRPC collector, as a URL (http://host:4317 for
	// plain text, https://... for TLS); empty: tracing off. The standard
	// OTEL_EXPORTER_OTLP_* variables (headers, timeout, certificates),
	// OTEL_TRACES_SAMPLER(_ARG), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	// and OTEL_BSP_* apply; OTEL_SDK_DISABLED=true turns it off.
	Endpoint string
	// ServiceName is the default service.name (OTEL_SERVICE_NAME wins).
	ServiceName string
}

// Enabled reports whether c turns tracing on.
func (c Config) Enabled() bool {
	return c.Endpoint != "" && !strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true")
}

// Validate checks the endpoint's form.
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("otlp-endpoint: want a URL such as http://otel-collector:4317")
	}
	return nil
}

// Setup installs the tracer provider and the W3C propagator globally (the
// OpenTelemetry convention instrumentation libraries follow) when c is
// enabled, and returns what flushes and removes them at shutdown.
func Setup(ctx context.Context, c Config) (shutdown func(context.Context) error, err error) {
	if !c.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(c.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(c.ServiceName)), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && res == nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	sampler, root, err := samplerFromEnv()
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	// The batch processor's queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE,
	// 2048 spans by default): a collector that is down drops spans, never
	// memory. The sampler comes from OTEL_TRACES_SAMPLER
	// (parentbased_always_on by default); the id generator lets the server
	// spans decide a root's sampling first (sampling.go).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler), sdktrace.WithIDGenerator(idGenerator{}))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	sampling := &rootSampling{root: root}
	active.Store(sampling)
	return func(ctx context.Context) error {
		active.CompareAndSwap(sampling, nil)
		err := tp.Shutdown(ctx)
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		return err
	}, nil
}

// GRPCClientOptions send the trace context on outgoing gRPC calls (empty
// when tracing is off).
func GRPCClientOptions(c Config) []grpc.DialOption {
	if !c.Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler())}
}

// PGXTracer traces PostgreSQL queries: the statement without parameters,
// no connection details.
func PGXTracer() pgx.QueryTracer {
	return otelpgx.NewTracer(otelpgx.WithDisableConnectionDetailsInAttributes())
}

// InstrumentRedis adds spans to every Redis command of client, without
// the command's arguments (keys are digests, values cache entries).
func InstrumentRedis(c Config, client redis.UniversalClient) error {
	if !c.Enabled() || client == nil {
		return nil
	}
	return redisotel.InstrumentTracing(client, redisotel.WithDBStatement(false))
}

// Start starts a span of keymint's own (password hashing and the like)
// under ctx's span; a no-op span when tracing is off.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(instrumentation).Start(ctx, name, trace.WithAttributes(attrs...))
}

// Inject writes ctx's trace context (traceparent, tracestate) into h: an
// answer to forward-auth or ext_authz hands it to the proxy, which passes
// it to the service behind it. Nothing when tracing is off.
func Inject(ctx context.Context, h http.Header) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// Propagating reports whether ctx has anything Inject would write: a span
// or baggage. It is false with tracing off, so a hot path can skip building
// a carrier at all.
func Propagating(ctx context.Context) bool {
	return trace.SpanContextFromContext(ctx).IsValid() || baggage.FromContext(ctx).Len() > 0
}

// HTTP wraps h so every request gets a server span continuing the
// caller's W3C trace context; h itself when tracing is off. The
// attributes and the status-recording writer are for recorded spans only.
func HTTP(c Config, h http.Handler) http.Handler {
	if !c.Enabled() {
		return h
	}
	s := newServerSpan()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, name := method(r.Method)
		// The server's header keys are canonical. As on gRPC, a request
		// without traceparent is a root and its baggage is not taken.
		traced := len(r.Header["Traceparent"]) > 0
		ctx, span := s.start(r.Context(), name, traced, func(ctx context.Context) context.Context {
			return otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
		})
		if !span.IsRecording() {
			h.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		defer span.End()
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(m))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// method keeps span names and attributes to the known methods, so a
// caller cannot put arbitrary text in them; name is the span's name.
func method(m string) (method, name string) {
	switch m {
	case http.MethodGet:
		return m, "HTTP GET"
	case http.MethodHead:
		return m, "HTTP HEAD"
	case http.MethodPost:
		return m, "HTTP POST"
	case http.MethodPut:
		return m, "HTTP PUT"
	case http.MethodPatch:
		return m, "HTTP PATCH"
	case http.MethodDelete:
		return m, "HTTP DELETE"
	case http.MethodOptions:
		return m, "HTTP OPTIONS"
	case http.MethodConnect:
		return m, "HTTP CONNECT"
	case http.MethodTrace:
		return m, "HTTP TRACE"
	}
	return "_OTHER", "HTTP _OTHER"
}

// statusWriter records the status code; Unwrap lets http.ResponseController
// reach the connection's Flush and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

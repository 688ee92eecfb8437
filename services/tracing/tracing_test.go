package tracing

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// receiver is an OTLP/gRPC trace collector run in the test: it keeps every
// span exported to it, by trace id.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu      sync.Mutex
	byTrace map[string][]*tracepb.Span
	arrived chan struct{} // a send per export
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				id := hex.EncodeToString(s.GetTraceId())
				r.byTrace[id] = append(r.byTrace[id], s)
			}
		}
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// spans returns the spans of trace id received so far.
func (r *receiver) spans(id trace.TraceID) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byTrace[id.String()]
}

// waitFor waits until a span of trace id has arrived.
func (r *receiver) waitFor(t testing.TB, id trace.TraceID) *tracepb.Span {
	t.Helper()
	deadline := time.After(30 * time.Second) // a hang, not a timing assertion
	for {
		if s := r.spans(id); len(s) > 0 {
			return s[0]
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("no span of trace %s arrived", id)
		}
	}
}

// setup runs a receiver and turns tracing on with sampler (OTEL_TRACES_SAMPLER)
// and arg, exporting every 10 ms; stop flushes every span to the receiver
// and turns tracing off.
func setup(t testing.TB, sampler, arg string) (r *receiver, c Config, stop func()) {
	return setupExport(t, sampler, arg, "10")
}

func setupExport(t testing.TB, sampler, arg, delayMillis string) (r *receiver, c Config, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r = &receiver{byTrace: map[string][]*tracepb.Span{}, arrived: make(chan struct{}, 1)}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	t.Setenv("OTEL_TRACES_SAMPLER", sampler)
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", arg)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", delayMillis)
	c = Config{Endpoint: "http://" + lis.Addr().String(), ServiceName: "tracing-test"}
	shutdown, err := Setup(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return r, c, stop
}

// services is a gRPC server (GRPCUnaryServer, GRPCStreamServer) and an
// HTTP server (HTTP) that report the span context each call hands on:
// gRPC through seen, HTTP in its answer's traceparent (Inject).
type services struct {
	grpc   healthpb.HealthClient
	http   string
	mu     sync.Mutex
	seenSC trace.SpanContext
}

func startServices(t *testing.T, c Config) *services {
	t.Helper()
	s := &services{}
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.mu.Lock()
		s.seenSC = trace.SpanContextFromContext(ctx)
		s.mu.Unlock()
		return h(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(GRPCUnaryServer(c, record)), grpc.StreamInterceptor(GRPCStreamServer(c)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s.grpc = healthpb.NewHealthClient(conn)
	hs := httptest.NewServer(HTTP(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Inject(r.Context(), w.Header())
	})))
	t.Cleanup(hs.Close)
	s.http = hs.URL
	return s
}

// check makes a gRPC health check with header traceparent (none if
// empty) and returns the span context the call handed on.
func (s *services) check(t *testing.T, traceparent string) trace.SpanContext {
	t.Helper()
	ctx := context.Background()
	if traceparent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
	}
	if _, err := s.grpc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenSC
}

// get makes an HTTP request with header traceparent (none if empty) and
// returns the traceparent of the answer.
func (s *services) get(t *testing.T, traceparent string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.http, nil)
	if err != nil {
		t.Fatal(err)
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("traceparent")
}

// parent is a caller's traceparent for trace n (0 < n < 256).
func parent(n byte, sampled bool) (header string, tid trace.TraceID, sid trace.SpanID) {
	for i := range tid {
		tid[i] = n
	}
	for i := range sid {
		sid[i] = n + 1
	}
	flags := "-00"
	if sampled {
		flags = "-01"
	}
	return "00-" + tid.String() + "-" + sid.String() + flags, tid, sid
}

// answerContext parses an answer's traceparent.
func answerContext(t *testing.T, tp string) (tid trace.TraceID, sampled bool) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("answer traceparent %q", tp)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("answer traceparent %q: %v", tp, err)
	}
	return tid, parts[3] == "01"
}

// A caller's sampled trace always gets the server span, whatever the
// sampler does with roots (here: drops them all): gRPC and HTTP.
func TestSampledParentGetsServerSpan(t *testing.T) {
	r, c, stop := setup(t, "parentbased_traceidratio", "0")
	s := startServices(t, c)
	tp1, tid1, sid1 := parent(0x10, true)
	if sc := s.check(t, tp1); sc.TraceID() != tid1 || !sc.IsSampled() {
		t.Errorf("gRPC call hands on %v, want trace %s sampled", sc, tid1)
	}
	tp2, tid2, sid2 := parent(0x20, true)
	if tid, sampled := answerContext(t, s.get(t, tp2)); tid != tid2 || !sampled {
		t.Errorf("HTTP answer: trace %s sampled %v, want %s sampled", tid, sampled, tid2)
	}
	stop()
	for _, want := range []struct {
		tid  trace.TraceID
		sid  trace.SpanID
		name string
	}{{tid1, sid1, "grpc.health.v1.Health/Check"}, {tid2, sid2, "HTTP GET"}} {
		spans := r.spans(want.tid)
		if len(spans) != 1 {
			t.Fatalf("trace %s: %d spans, want 1", want.tid, len(spans))
		}
		sp := spans[0]
		if sp.GetName() != want.name || sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER || hex.EncodeToString(sp.GetParentSpanId()) != want.sid.String() {
			t.Errorf("span %s kind %v parent %x, want %s, server, parent %s", sp.GetName(), sp.GetKind(), sp.GetParentSpanId(), want.name, want.sid)
		}
	}
}

// A caller's unsampled trace gets no span, even with a sampler that keeps
// every root, and is still handed on (the trace id, not sampled).
func TestUnsampledParentGetsNoSpanButPropagates(t *testing.T) {
	r, c, stop := setup(t, "parentbased_always_on", "")
	s := startServices(t, c)
	tp1, tid1, _ := parent(0x30, false)
	if sc := s.check(t, tp1); sc.TraceID() != tid1 || sc.IsSampled() {
		t.Errorf("gRPC call hands on %v, want trace %s not sampled", sc, tid1)
	}
	tp2, tid2, _ := parent(0x40, false)
	if tid, sampled := answerContext(t, s.get(t, tp2)); tid != tid2 || sampled {
		t.Errorf("HTTP answer: trace %s sampled %v, want %s not sampled", tid, sampled, tid2)
	}
	// A root, sampled: the receiver got what was exported.
	control := s.check(t, "")
	stop()
	if len(r.spans(control.TraceID())) != 1 {
		t.Fatalf("root call's trace %s: %d spans, want 1", control.TraceID(), len(r.spans(control.TraceID())))
	}
	for _, tid := range []trace.TraceID{tid1, tid2} {
		if n := len(r.spans(tid)); n != 0 {
			t.Errorf("unsampled trace %s: %d spans, want none", tid, n)
		}
	}
}

// Roots (calls without a caller's trace) are decided before the span is
// made: every call hands on a new valid trace, a span is exported for
// exactly the calls whose trace says sampled, and the sampled share is the
// ratio (0, 1/2, 1): the SDK takes the decision made first, not one of its
// own on top of it (which would sample 1/4 at 1/2).
func TestRootSampling(t *testing.T) {
	for _, tc := range []struct{ sampler, arg string }{
		{"parentbased_traceidratio", "0"}, {"parentbased_traceidratio", "0.5"}, {"traceidratio", "0.5"},
		{"parentbased_traceidratio", "1"}, {"always_off", ""},
	} {
		t.Run(tc.sampler+"="+tc.arg, func(t *testing.T) {
			r, c, stop := setup(t, tc.sampler, tc.arg)
			s := startServices(t, c)
			const calls = 1000
			seen := map[trace.TraceID]bool{} // trace: sampled
			for range calls {
				sc := s.check(t, "")
				tid, sampled := answerContext(t, s.get(t, ""))
				for _, x := range []struct {
					tid     trace.TraceID
					sampled bool
				}{{sc.TraceID(), sc.IsSampled()}, {tid, sampled}} {
					if !x.tid.IsValid() {
						t.Fatal("a root call hands on no trace")
					}
					if _, dup := seen[x.tid]; dup {
						t.Fatalf("trace %s handed on twice", x.tid)
					}
					seen[x.tid] = x.sampled
				}
			}
			stop()
			var sampled int
			for tid, s := range seen {
				n := len(r.spans(tid))
				if s {
					sampled++
				}
				if (n == 1) != s || n > 1 {
					t.Errorf("trace %s sampled %v: %d spans", tid, s, n)
				}
			}
			switch {
			case tc.arg == "0" || tc.sampler == "always_off":
				if sampled != 0 {
					t.Errorf("%d of %d roots sampled, want none", sampled, 2*calls)
				}
			case tc.arg == "1":
				if sampled != 2*calls {
					t.Errorf("%d of %d roots sampled, want all", sampled, 2*calls)
				}
			default: // 1/2 of 2000: outside 800-1200 is 9 standard deviations off
				if sampled < 2*calls*4/10 || sampled > 2*calls*6/10 {
					t.Errorf("%d of %d roots sampled at 1/2", sampled, 2*calls)
				}
			}
		})
	}
}

// A stream gets a server span too, under the caller's trace.
func TestStreamServerSpan(t *testing.T) {
	r, c, _ := setup(t, "parentbased_traceidratio", "0")
	s := startServices(t, c)
	tp, tid, sid := parent(0x50, true)
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "traceparent", tp))
	w, err := s.grpc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel() // the server's handler returns, and its span ends
	sp := r.waitFor(t, tid)
	if sp.GetName() != "grpc.health.v1.Health/Watch" || hex.EncodeToString(sp.GetParentSpanId()) != sid.String() {
		t.Errorf("stream span %s parent %x, want grpc.health.v1.Health/Watch under %s", sp.GetName(), sp.GetParentSpanId(), sid)
	}
}

func TestSamplerFromEnv(t *testing.T) {
	for _, tc := range []struct {
		sampler, arg string
		want, root   string // descriptions; want "" for an error
	}{
		{"", "", "ParentBased{root:AlwaysOnSampler", "AlwaysOnSampler"},
		{" Parentbased_TraceIDRatio ", "0.01", "ParentBased{root:TraceIDRatioBased{0.01}", "TraceIDRatioBased{0.01}"},
		{"parentbased_traceidratio", "", "ParentBased{root:TraceIDRatioBased{1}", "TraceIDRatioBased{1}"},
		{"parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}", "TraceIDRatioBased{0.25}"},
		{"always_on", "", "AlwaysOnSampler", "AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler", "AlwaysOffSampler"},
		{"traceidratio", "1.5", "", ""},
		{"parentbased_traceidratio", "-0.1", "", ""},
		{"parentbased_traceidratio", "one", "", ""},
		{"jaeger_remote", "", "", ""},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.arg)
		sampler, root, err := samplerFromEnv()
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q %q: %s, want an error", tc.sampler, tc.arg, sampler.Description())
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tc.sampler, tc.arg, err)
			continue
		}
		if !strings.HasPrefix(sampler.Description(), tc.want) || root.Description() != tc.root {
			t.Errorf("%q %q: %s (root %s), want %s… (root %s)", tc.sampler, tc.arg, sampler.Description(), root.Description(), tc.want, tc.root)
		}
	}
}

// Baggage is taken with a caller's trace context and handed on with it; a
// request without traceparent is a new root, and its baggage is not taken.
func TestBaggageComesWithTraceContext(t *testing.T) {
	_, c, _ := setup(t, "parentbased_always_on", "")
	s := startServices(t, c)
	get := func(traceparent string) string {
		req, err := http.NewRequest(http.MethodGet, s.http, nil)
		if err != nil {
			t.Fatal(err)
		}
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		req.Header.Set("baggage", "tenant=acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("baggage")
	}
	tp, _, _ := parent(0x60, true)
	if got := get(tp); got != "tenant=acme" {
		t.Errorf("with traceparent: answer baggage %q, want tenant=acme", got)
	}
	if got := get(""); got != "" {
		t.Errorf("without traceparent: answer baggage %q, want none", got)
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/tokens"
)

// otlpReceiver is an OTLP trace collector run in the test: it keeps every
// span exported to it.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	scopes   map[*tracepb.Span]string
	services map[string]bool
	// service is each span's service.name.
	service map[*tracepb.Span]string
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
				r.services[service] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, s)
				r.scopes[s] = ss.GetScope().GetName()
				r.service[s] = service
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{scopes: map[*tracepb.Span]string{}, services: map[string]bool{}, service: map[*tracepb.Span]string{}}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return r, "http://" + lis.Addr().String()
}

// traceparent is a W3C traceparent for a fixed trace and parent span.
func traceparent(trace, span byte) (header, traceID, spanID string) {
	traceID = strings.Repeat(hex.EncodeToString([]byte{trace}), 16)
	spanID = strings.Repeat(hex.EncodeToString([]byte{span}), 8)
	return "00-" + traceID + "-" + spanID + "-01", traceID, spanID
}

// attrStrings returns every string an attribute value holds.
func attrStrings(v *commonpb.AnyValue) []string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return []string{x.StringValue}
	case *commonpb.AnyValue_BytesValue:
		return []string{string(x.BytesValue), hex.EncodeToString(x.BytesValue)}
	case *commonpb.AnyValue_ArrayValue:
		var out []string
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, attrStrings(e)...)
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		var out []string
		for _, kv := range x.KvlistValue.GetValues() {
			out = append(out, kv.GetKey())
			out = append(out, attrStrings(kv.GetValue())...)
		}
		return out
	}
	return nil
}

// With --otlp-endpoint, a REST mint, a gRPC validation, a forward-auth and
// an ext_authz check each continue the caller's W3C trace: server spans
// with the caller's span as parent, store, Redis and argon2id spans under
// them, the trace context in the forward-auth and ext_authz answers, and no
// secret in any attribute. Not parallel: tracing is process-global, as
// OpenTelemetry's instrumentation expects.
func TestTracing(t *testing.T) {
	recv, endpoint := startReceiver(t)
	cfg := testConfig(t)
	cfg.DatabaseURL = pgtest.NewDatabase(t)
	const pepperKey = "tracing-pepper-0123456789abcdef!"
	cfg.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte(pepperKey))
	cfg.Cache.RedisURL = redistest.Start(t).URL()
	cfg.Routes = []string{"GET /reports=reports:read"}
	cfg.OTLPEndpoint = endpoint
	const email, password = "tracing@example.com", "a long tracing password"
	createUser(t, cfg, email, "acme", password, false)
	srv := startServer(t, cfg)

	// 1. A REST mint.
	tp1, trace1, parent1 := traceparent(0x11, 0x12)
	var minted upsolverToken
	if code, body := do(t, "POST", srv.http+"/api-tokens", map[string]string{
		"content-type": "application/json", "x-api-email": email, "x-api-password": password, "traceparent": tp1,
	}, `{"displayData":{"name":"traced"}}`, &minted); code != 200 {
		t.Fatalf("mint: %d %s", code, body)
	}
	// A token with the scope the forward-auth and ext_authz routes need.
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	scoped, err := srv.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "scoped", Scopes: []string{"reports:read"}})
	if err != nil {
		t.Fatal(err)
	}

	// 2. A gRPC validation of an unknown token: a store lookup.
	format, err := tokens.NewFormat("km")
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := format.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tp2, trace2, parent2 := traceparent(0x21, 0x22)
	vctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("traceparent", tp2))
	if r, err := srv.client.ValidateToken(vctx, &keymintv1.ValidateTokenRequest{Token: unknown}); err != nil || r.GetValid() {
		t.Fatalf("validate unknown: %v, %v", r, err)
	}

	// 3. forward-auth: the answer carries the trace on.
	tp3, trace3, _ := traceparent(0x31, 0x32)
	req, _ := http.NewRequest("GET", srv.http+"/v1/forward-auth", nil)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/reports")
	req.Header.Set("Authorization", "Bearer "+scoped.Secret)
	req.Header.Set("traceparent", tp3)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("forward-auth: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("traceparent"); !strings.HasPrefix(got, "00-"+trace3+"-") || strings.Contains(got, tp3[36:52]) {
		t.Errorf("forward-auth answer traceparent %q: want trace %s with keymint's span", got, trace3)
	}

	// 4. ext_authz: the OK answer adds traceparent for the upstream.
	tp4, trace4, _ := traceparent(0x41, 0x42)
	conn, err := grpc.NewClient(srv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	actx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("traceparent", tp4))
	check, err := authv3.NewAuthorizationClient(conn).Check(actx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			Headers: map[string]string{"authorization": "Bearer " + scoped.Secret}}},
	}})
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("ext_authz: %v, %v", check, err)
	}
	var authzTP string
	for _, h := range check.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "traceparent" {
			authzTP = h.GetHeader().GetValue()
		}
	}
	if !strings.HasPrefix(authzTP, "00-"+trace4+"-") {
		t.Errorf("ext_authz answer traceparent %q: want trace %s", authzTP, trace4)
	}

	// Shutting down flushes every span.
	srv.stop()

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if !recv.services["keymint"] {
		t.Errorf("service names %v, want keymint", recv.services)
	}
	byTrace := map[string][]*tracepb.Span{}
	for _, s := range recv.spans {
		id := hex.EncodeToString(s.GetTraceId())
		byTrace[id] = append(byTrace[id], s)
	}
	has := func(trace string, what string, ok func(s *tracepb.Span) bool) {
		t.Helper()
		for _, s := range byTrace[trace] {
			if ok(s) {
				return
			}
		}
		var names []string
		for _, s := range byTrace[trace] {
			names = append(names, s.GetName()+" ("+recv.scopes[s]+")")
		}
		t.Errorf("trace %s: no %s among %v", trace, what, names)
	}
	childOf := func(parent string) func(s *tracepb.Span) bool {
		return func(s *tracepb.Span) bool {
			return s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && hex.EncodeToString(s.GetParentSpanId()) == parent
		}
	}
	scope := func(part string) func(s *tracepb.Span) bool {
		return func(s *tracepb.Span) bool { return strings.Contains(recv.scopes[s], part) }
	}
	has(trace1, "HTTP server span under the caller's", childOf(parent1))
	has(trace1, "gRPC server span (gateway to gRPC)", func(s *tracepb.Span) bool {
		return s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && strings.HasPrefix(s.GetName(), "keymint.v1.")
	})
	has(trace1, "argon2id span", func(s *tracepb.Span) bool { return s.GetName() == "argon2id.verify" })
	has(trace1, "PostgreSQL span", scope("otelpgx"))
	has(trace1, "Redis span (sign-in throttle)", scope("redisotel"))
	has(trace2, "ValidateToken server span under the caller's", func(s *tracepb.Span) bool {
		return childOf(parent2)(s) && s.GetName() == "keymint.v1.TokenService/ValidateToken"
	})
	has(trace2, "PostgreSQL span", scope("otelpgx"))
	has(trace3, "forward-auth server span", func(s *tracepb.Span) bool { return s.GetName() == "HTTP GET" })
	has(trace4, "ext_authz server span", func(s *tracepb.Span) bool {
		return s.GetName() == "envoy.service.auth.v3.Authorization/Check"
	})

	secrets := map[string]string{"minted token": minted.APIToken, "scoped token": scoped.Secret, "unknown token": unknown,
		"password": password, "pepper": pepperKey, "pepper (base64)": cfg.Pepper[2:]}
	for _, s := range recv.spans {
		var values []string
		for _, a := range s.GetAttributes() {
			values = append(values, a.GetKey())
			values = append(values, attrStrings(a.GetValue())...)
		}
		for _, e := range s.GetEvents() {
			values = append(values, e.GetName())
			for _, a := range e.GetAttributes() {
				values = append(values, attrStrings(a.GetValue())...)
			}
		}
		values = append(values, s.GetName(), s.GetStatus().GetMessage())
		for what, secret := range secrets {
			for _, v := range values {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %s holds the %s", s.GetName(), what)
				}
			}
		}
	}
	t.Logf("%d spans in %d traces", len(recv.spans), len(byTrace))

	// Tracing off (the default): nothing is added to answers.
	off := testConfig(t)
	off.Routes = cfg.Routes
	createUser(t, off, email, "acme", password, false)
	srv2 := startServer(t, off)
	sctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	tok2, err := srv2.client.CreateToken(sctx, &keymintv1.CreateTokenRequest{Name: "scoped", Scopes: []string{"reports:read"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", srv2.http+"/v1/forward-auth", nil)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/reports")
	req.Header.Set("Authorization", "Bearer "+tok2.Secret)
	req.Header.Set("traceparent", tp3)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("traceparent") != "" {
		t.Errorf("tracing off: forward-auth %d with traceparent %q, want 200 and none", resp.StatusCode, resp.Header.Get("traceparent"))
	}
}

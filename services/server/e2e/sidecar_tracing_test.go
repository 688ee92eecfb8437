package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/server/servertest"
)

// W3C trace context across the sidecar hop: a caller's trace goes into
// `keymint sidecar` (a process of its own, with its own service name),
// from there into the central keymint's ValidateToken, and comes back in
// the sidecar's forward-auth and ext_authz answers. Both processes export
// to one OTLP receiver run in the test; the spans must chain: caller →
// sidecar server span → sidecar client span → central server span. Not
// parallel: tracing is process-global (the central keymint runs in the
// test process).
func TestSidecarTracePropagation(t *testing.T) {
	recv, endpoint := startReceiver(t)
	cfg := testConfig(t)
	cfg.OTLPEndpoint = endpoint
	const email, password = "sidetrace@example.com", "a long sidecar tracing password"
	createUser(t, cfg, email, "acme", password, false)
	central := startServer(t, cfg)
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
	mint := func() *keymintv1.CreateTokenResponse {
		r, err := central.client.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "traced", Scopes: []string{"reports:read"}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Two tokens, so that each answer needs its own central hop (the
	// sidecar caches what it validated).
	forwardTok, authzTok := mint(), mint()

	exe := keymintBinary(t)
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	sidecar := exec.Command(exe, "sidecar", "--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
		"--central-addr", central.grpc, "--route", "GET /reports=reports:read", "--otlp-endpoint", endpoint)
	// The batch exporter sends every 100 ms, so the test need not stop
	// the sidecar to see its spans.
	sidecar.Env = append(os.Environ(), "OTEL_BSP_SCHEDULE_DELAY=100")
	logs := &syncBuffer{}
	sidecar.Stdout, sidecar.Stderr = logs, logs
	if err := sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sidecar.Process.Kill()
		_ = sidecar.Wait()
		if t.Failed() {
			t.Logf("sidecar logs:\n%s", logs.String())
		}
	})
	waitReady(t, "http://"+httpAddr)

	// forward-auth.
	tpF, traceF, callerF := traceparent(0x51, 0x52)
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/v1/forward-auth", nil)
	req.Header.Set("X-Forwarded-Uri", "/reports")
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("Authorization", "Bearer "+forwardTok.Secret)
	req.Header.Set("traceparent", tpF)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("forward-auth through the sidecar: %d", resp.StatusCode)
	}
	answerF := resp.Header.Get("traceparent")

	// ext_authz.
	tpA, traceA, callerA := traceparent(0x61, 0x62)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	actx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("traceparent", tpA))
	check, err := authv3.NewAuthorizationClient(conn).Check(actx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
			Headers: map[string]string{"authorization": "Bearer " + authzTok.Secret}}},
	}})
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("ext_authz through the sidecar: %v, %v", check, err)
	}
	var answerA string
	for _, h := range check.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "traceparent" {
			answerA = h.GetHeader().GetValue()
		}
	}

	// chain finds, in trace, the sidecar's server span under the caller's
	// span, its client span, and the central ValidateToken span under that.
	chain := func(trace, caller string) (sidecarServer, central string, ok bool) {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		var spans []*tracepb.Span
		for _, s := range recv.spans {
			if hex.EncodeToString(s.GetTraceId()) == trace {
				spans = append(spans, s)
			}
		}
		children := func(parent, service string, kind tracepb.Span_SpanKind) []*tracepb.Span {
			var out []*tracepb.Span
			for _, s := range spans {
				if hex.EncodeToString(s.GetParentSpanId()) == parent && recv.service[s] == service && s.GetKind() == kind {
					out = append(out, s)
				}
			}
			return out
		}
		// Below the sidecar's server span, spans of its own (none kind
		// checked) may stand between it and the client call.
		var under func(id string, depth int) *tracepb.Span
		under = func(id string, depth int) *tracepb.Span {
			if depth > 4 {
				return nil
			}
			for _, c := range children(id, "keymint-sidecar", tracepb.Span_SPAN_KIND_CLIENT) {
				if cs := children(hex.EncodeToString(c.GetSpanId()), "keymint", tracepb.Span_SPAN_KIND_SERVER); len(cs) > 0 &&
					cs[0].GetName() == "keymint.v1.TokenService/ValidateToken" {
					return cs[0]
				}
			}
			for _, s := range spans {
				if hex.EncodeToString(s.GetParentSpanId()) == id && recv.service[s] == "keymint-sidecar" && s.GetKind() == tracepb.Span_SPAN_KIND_INTERNAL {
					if found := under(hex.EncodeToString(s.GetSpanId()), depth+1); found != nil {
						return found
					}
				}
			}
			return nil
		}
		for _, s := range children(caller, "keymint-sidecar", tracepb.Span_SPAN_KIND_SERVER) {
			if c := under(hex.EncodeToString(s.GetSpanId()), 0); c != nil {
				return hex.EncodeToString(s.GetSpanId()), hex.EncodeToString(c.GetSpanId()), true
			}
		}
		return "", "", false
	}
	for _, c := range []struct{ what, trace, caller, answer string }{
		{"forward-auth", traceF, callerF, answerF}, {"ext_authz", traceA, callerA, answerA},
	} {
		var server string
		waitFor(t, c.what+": caller → sidecar → keymint spans exported", func() bool {
			var ok bool
			server, _, ok = chain(c.trace, c.caller)
			return ok
		})
		parts := strings.Split(c.answer, "-")
		if len(parts) != 4 || parts[1] != c.trace || parts[2] != server {
			t.Errorf("%s answer traceparent %q: want trace %s with the sidecar's server span %s", c.what, c.answer, c.trace, server)
		}
	}
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/requestid"
)

type countingTokens struct{ calls int }

func (c *countingTokens) AuthenticateToken(context.Context, string) (authn.Principal, error) {
	c.calls++
	return authn.Principal{UserID: "usr_1"}, nil
}

// The unary chain composed for one method (bound) does what the chain for
// any method does: metrics counted under the method, credentials read
// only for a method that is not public, the deadline cap only for a
// method that does not bound itself.
func TestBoundChain(t *testing.T) {
	t.Parallel()
	for _, method := range []string{keymintv1.TokenService_ValidateToken_FullMethodName, keymintv1.TokenService_ListTokens_FullMethodName} {
		for _, bound := range []bool{false, true} {
			m := newRPCMetrics(prometheus.NewRegistry())
			tokens := &countingTokens{}
			links := unaryInterceptors(m, slog.New(slog.DiscardHandler), &accounts.Authenticator{Tokens: tokens, Public: publicMethods})
			info := &grpc.UnaryServerInfo{FullMethod: method}
			var principal, deadline bool
			final := func(ctx context.Context, _ any) (any, error) {
				_, principal = authn.PrincipalFrom(ctx)
				_, deadline = ctx.Deadline()
				return "ok", nil
			}
			call := func(ctx context.Context) (any, error) { return unaryChain(runs(links))(ctx, nil, info, final) }
			if bound {
				call = func(ctx context.Context) (any, error) { return compose(links, info, final)(ctx, nil) }
			}
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(authn.HeaderAuthorization, "Bearer km_x"))
			if resp, err := call(ctx); resp != "ok" || err != nil {
				t.Fatalf("%s bound=%v: %v %v", method, bound, resp, err)
			}
			public := publicMethods[method]
			var counted dto.Metric
			if err := m.calls.WithLabelValues(method, "OK").Write(&counted); err != nil {
				t.Fatal(err)
			}
			if got := counted.GetCounter().GetValue(); got != 1 {
				t.Errorf("%s bound=%v: %v calls counted, want 1", method, bound, got)
			}
			if principal == public || (tokens.calls == 1) == public {
				t.Errorf("%s bound=%v (public %v): principal %v, token lookups %d", method, bound, public, principal, tokens.calls)
			}
			if deadline != !selfBounded[method] {
				t.Errorf("%s bound=%v: deadline %v", method, bound, deadline)
			}
		}
	}
}

// A panic in a handler reaches the caller as Internal, and observe counts
// and logs it as that Internal, with the call's request id: observe sits
// inside the request id and outside panic recovery (chains.go).
func TestChainObservesPanics(t *testing.T) {
	t.Parallel()
	method := keymintv1.TokenService_ListTokens_FullMethodName
	for _, bound := range []bool{false, true} {
		m := newRPCMetrics(prometheus.NewRegistry())
		var logged bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logged, nil))
		links := unaryInterceptors(m, log, &accounts.Authenticator{Tokens: &countingTokens{}, Public: publicMethods})
		info := &grpc.UnaryServerInfo{FullMethod: method}
		final := func(context.Context, any) (any, error) { panic("handler bug") }
		call := func(ctx context.Context) (any, error) { return unaryChain(runs(links))(ctx, nil, info, final) }
		if bound {
			call = func(ctx context.Context) (any, error) { return compose(links, info, final)(ctx, nil) }
		}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(authn.HeaderAuthorization, "Bearer km_x", requestid.Key, "req-panic-1"))
		if _, err := call(ctx); status.Code(err) != codes.Internal {
			t.Fatalf("bound=%v: %v, want Internal", bound, err)
		}
		var counted dto.Metric
		if err := m.calls.WithLabelValues(method, "Internal").Write(&counted); err != nil {
			t.Fatal(err)
		}
		if got := counted.GetCounter().GetValue(); got != 1 {
			t.Errorf("bound=%v: %v Internal calls counted, want 1", bound, got)
		}
		var rpcLine map[string]any
		for line := range strings.SplitSeq(strings.TrimSpace(logged.String()), "\n") {
			var l map[string]any
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("bound=%v: log line %q: %v", bound, line, err)
			}
			if l["msg"] == "rpc" {
				rpcLine = l
			}
		}
		if rpcLine == nil || rpcLine["code"] != "Internal" || rpcLine["request_id"] != "req-panic-1" || rpcLine["method"] != method {
			t.Errorf("bound=%v: access log line %v, want code Internal, request_id req-panic-1, method %s", bound, rpcLine, method)
		}
		if strings.Contains(logged.String(), "km_x") {
			t.Errorf("bound=%v: the log holds the caller's token", bound)
		}
	}
}

// The in-process chain (the gateway's REST validations) keeps the id the
// gateway put in the context, logs the call with it and counts it as the
// network chain does; a context without one gets a new id. Mutation:
// inProcessInterceptors keeping requestIDUnary first (which does not look
// in the context) logs a new id instead of the gateway's.
func TestInProcessChainKeepsTheGatewaysID(t *testing.T) {
	t.Parallel()
	m := newRPCMetrics(prometheus.NewRegistry())
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	links := inProcessInterceptors(m, log, &accounts.Authenticator{Tokens: &countingTokens{}, Public: publicMethods})
	info := &grpc.UnaryServerInfo{FullMethod: keymintv1.TokenService_ListTokens_FullMethodName}
	var seen string
	call := compose(links, info, func(ctx context.Context, _ any) (any, error) {
		seen = requestid.From(ctx)
		return "ok", nil
	})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(authn.HeaderAuthorization, "Bearer km_x"))
	if _, err := call(requestid.With(ctx, "gw-req-1"), nil); err != nil || seen != "gw-req-1" {
		t.Fatalf("handler saw id %q (%v), want the gateway's gw-req-1", seen, err)
	}
	if !strings.Contains(logged.String(), `"request_id":"gw-req-1"`) {
		t.Errorf("access log without the gateway's id: %s", logged.String())
	}
	if _, err := call(ctx, nil); err != nil || len(seen) != 32 {
		t.Errorf("without an id in the context: handler saw %q (%v), want a new one", seen, err)
	}
}

package server

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/authn"
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

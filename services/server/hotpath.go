package server

import (
	"context"
	"fmt"
	"slices"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/keymint/keymint/gateway"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// link is one interceptor of a unary chain. run serves any method; a
// chain composed for one method (compose) takes forMethod(method) instead
// when it is set: run with what it looks up by method name on every call
// (a metric's children, a method set's membership) looked up once, or nil
// when that method skips it.
type link struct {
	run       grpc.UnaryServerInterceptor
	forMethod func(method string) grpc.UnaryServerInterceptor
}

// runs is links for any method: the chain unaryChain runs.
func runs(links []link) []grpc.UnaryServerInterceptor {
	ics := make([]grpc.UnaryServerInterceptor, len(links))
	for i, l := range links {
		ics[i] = l.run
	}
	return ics
}

// compose returns final behind links (first outermost), specialised for
// info.FullMethod and built once: calling it allocates nothing for the
// chain itself.
func compose(links []link, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	h := final
	for i := len(links) - 1; i >= 0; i-- {
		ic := links[i].run
		if f := links[i].forMethod; f != nil {
			if ic = f(info.FullMethod); ic == nil {
				continue
			}
		}
		next := h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	return h
}

// validateHandler is ValidateToken behind the server's unary chain.
func validateHandler(chain []link, srv keymintv1.TokenServiceServer) grpc.UnaryHandler {
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: keymintv1.TokenService_ValidateToken_FullMethodName}
	return compose(chain, info, func(ctx context.Context, req any) (any, error) {
		return srv.ValidateToken(ctx, req.(*keymintv1.ValidateTokenRequest))
	})
}

// checkHandler is Envoy ext_authz Check behind the server's unary chain,
// composed once as ValidateToken's is: Check is the same hot path for Envoy,
// and grpc-go's per-call chaining allocated a closure per interceptor.
func checkHandler(chain []link, srv authv3.AuthorizationServer) grpc.UnaryHandler {
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return compose(chain, info, func(ctx context.Context, req any) (any, error) {
		return srv.Check(ctx, req.(*authv3.CheckRequest))
	})
}

// validateInProcess is the gateway's REST ValidateToken: the gRPC handler
// behind the server's own unary interceptor chain, called in process. REST
// validations thus get the metrics, logging and error mapping gRPC ones get,
// without a loopback gRPC round trip per call.
func validateInProcess(h grpc.UnaryHandler) gateway.ValidateFunc {
	return func(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.(*keymintv1.ValidateTokenResponse), nil
	}
}

// composedMethod is a unary method's handler for its grpc.MethodDesc that
// runs h, the method's chain composed once (compose), in place of the
// server's interceptor: the generated handler allocated an info and a
// closure on every call to hand the interceptor, which then looked the
// method up to find h. h must be the server's chain (the gRPC span first,
// when tracing is on) in front of the registered server's method.
func composedMethod[Req any](h grpc.UnaryHandler) grpc.MethodHandler {
	return func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		return h(ctx, in)
	}
}

// withMethod is a copy of sd with method's handler replaced by h.
func withMethod(sd *grpc.ServiceDesc, method string, h grpc.MethodHandler) *grpc.ServiceDesc {
	out := *sd
	out.Methods = slices.Clone(sd.Methods)
	for i := range out.Methods {
		if out.Methods[i].MethodName == method {
			out.Methods[i].Handler = h
			return &out
		}
	}
	panic(fmt.Sprintf("%s has no method %s", sd.ServiceName, method))
}

// unaryChain is the server's one unary interceptor: the chain ics, as
// grpc.ChainUnaryInterceptor runs it. The hot methods do not reach it:
// they are registered with their chain composed once (composedMethod).
func unaryChain(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return chainCall(ics, 0, ctx, req, info, handler)
	}
}

// passOn is an interceptor that only passes the call on:
// tracing.GRPCUnaryServer(tc, passOn) is the gRPC span alone.
func passOn(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

func chainCall(ics []grpc.UnaryServerInterceptor, i int, ctx context.Context, req any, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) (any, error) {
	if i == len(ics) {
		return final(ctx, req)
	}
	return ics[i](ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return chainCall(ics, i+1, ctx, req, info, final)
	})
}

// selfBounded lists methods that bound their own waiting, so the deadline
// interceptor (a context and a timer per call) is skipped for them:
// ValidateToken answers from memory or waits on a cache load that is
// bounded by the cache's own load timeout, whatever the caller's deadline;
// ext_authz Check on this server is that same in-process validation (the
// sidecar's Check, which calls the central server, keeps its deadline: it
// has a chain of its own).
var selfBounded = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName: true,
	authv3.Authorization_Check_FullMethodName:           true,
}

// except is ic for every method but those in skip.
func except(skip map[string]bool, ic grpc.UnaryServerInterceptor) link {
	return link{
		run: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if skip[info.FullMethod] {
				return handler(ctx, req)
			}
			return ic(ctx, req, info, handler)
		},
		forMethod: func(method string) grpc.UnaryServerInterceptor {
			if skip[method] {
				return nil
			}
			return ic
		},
	}
}

package main

import (
	"context"

	"google.golang.org/grpc"

	"github.com/keymint/keymint/gateway"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// validateInProcess is the gateway's REST ValidateToken: the gRPC handler
// behind the server's own unary interceptor chain, called in process. REST
// validations thus get the metrics, logging, deadline and error mapping
// gRPC ones get, without a loopback gRPC round trip per call. The chain is
// built once, not per call.
func validateInProcess(chain []grpc.UnaryServerInterceptor, srv keymintv1.TokenServiceServer) gateway.ValidateFunc {
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: keymintv1.TokenService_ValidateToken_FullMethodName}
	h := grpc.UnaryHandler(func(ctx context.Context, req any) (any, error) {
		return srv.ValidateToken(ctx, req.(*keymintv1.ValidateTokenRequest))
	})
	for i := len(chain) - 1; i >= 0; i-- {
		ic, next := chain[i], h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	return func(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.(*keymintv1.ValidateTokenResponse), nil
	}
}

// selfBounded lists methods that bound their own waiting, so the deadline
// interceptor (a context and a timer per call) is skipped for them:
// ValidateToken answers from memory or waits on a cache load that is
// bounded by the cache's own load timeout, whatever the caller's deadline.
var selfBounded = map[string]bool{
	keymintv1.TokenService_ValidateToken_FullMethodName: true,
}

// except runs ic for every method but those in skip.
func except(skip map[string]bool, ic grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if skip[info.FullMethod] {
			return handler(ctx, req)
		}
		return ic(ctx, req, info, handler)
	}
}

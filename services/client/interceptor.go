package client

import (
	"context"
	"net/netip"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// MethodScopes maps full gRPC method names ("/pkg.Service/Method") to the
// scopes a call needs. A method not listed needs a valid token, no scope.
type MethodScopes map[string][]string

func (v *Validator) authorize(ctx context.Context, method string, scopes MethodScopes) (context.Context, error) {
	var token string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get(authn.HeaderAuthorization); len(vals) > 0 {
			token = authn.TokenFromAuthorization(vals[0])
		}
	}
	var ip netip.Addr
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
			ip = ap.Addr()
		}
	}
	res, err := v.ValidateFrom(ctx, token, ip, scopes[method]...)
	switch {
	case err != nil:
		return nil, status.Error(codes.Unavailable, "authorization unavailable")
	case res.Valid:
		return WithIdentity(ctx, res.Identity), nil
	case res.Reason == keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE,
		res.Reason == keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED:
		return nil, status.Error(codes.PermissionDenied, "permission denied")
	case res.Reason == keymintv1.ValidateTokenResponse_RATE_LIMITED:
		return nil, status.Error(codes.ResourceExhausted, "rate limited")
	}
	return nil, status.Error(codes.Unauthenticated, "unauthenticated")
}

// UnaryServerInterceptor authorizes every unary call by the token in its
// authorization metadata and puts the Identity in the handler's context.
func (v *Validator) UnaryServerInterceptor(scopes MethodScopes) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.authorize(ctx, info.FullMethod, scopes)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authorizes every stream when it opens.
func (v *Validator) StreamServerInterceptor(scopes MethodScopes) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.authorize(ss.Context(), info.FullMethod, scopes)
		if err != nil {
			return err
		}
		return handler(srv, authn.StreamWithContext(ctx, ss))
	}
}

package accounts

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/keymint/keymint/services/authn"
)

// TokenAuthenticator resolves an API token to the principal it acts for.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (authn.Principal, error)
}

// Authenticator is the gRPC interceptor that turns request credentials into a
// authn.Principal in the context. Handlers decide what a method needs; a method
// without credentials simply gets no principal.
type Authenticator struct {
	Accounts *Service
	Tokens   TokenAuthenticator
	// Public lists full method names that never read credentials (the hot
	// ValidateToken path, health, reflection), so they cost nothing there.
	Public map[string]bool
}

// Authenticate reads credentials from incoming metadata: email + password,
// else authorization, else a session. Credentials that are present but wrong
// are an error.
func (a *Authenticator) Authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	email, password := first(md, authn.HeaderEmail), first(md, authn.HeaderPassword)
	if email != "" || password != "" {
		p, err := a.Accounts.Authenticate(ctx, email, password)
		if err != nil {
			return ctx, err
		}
		return authn.WithPrincipal(ctx, p), nil
	}
	if auth := first(md, authn.HeaderAuthorization); auth != "" {
		p, err := a.Tokens.AuthenticateToken(ctx, authn.TokenFromAuthorization(auth))
		if err != nil {
			return ctx, err
		}
		return authn.WithPrincipal(ctx, p), nil
	}
	if secret := first(md, authn.HeaderSession); secret != "" {
		p, err := a.Accounts.AuthenticateSession(ctx, secret)
		if err != nil {
			return ctx, err
		}
		return authn.WithPrincipal(ctx, p), nil
	}
	return ctx, nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// UnaryServerInterceptor authenticates every non-public unary call.
func (a *Authenticator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if a.Public[info.FullMethod] {
			return handler(ctx, req)
		}
		ctx, err := a.Authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authenticates every non-public streaming call.
func (a *Authenticator) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if a.Public[info.FullMethod] {
			return handler(srv, ss)
		}
		ctx, err := a.Authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, authn.StreamWithContext(ctx, ss))
	}
}

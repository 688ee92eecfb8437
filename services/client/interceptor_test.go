package client

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The interceptors' gRPC code for each case, the peer's address checked
// against an allow-list, and the identity handed to the handler.
// Mutations it fails on: authorize's `len(vals) > 0` → `>= 0` (metadata
// without authorization indexes past its end), `ok && p.Addr != nil` and
// `err == nil` negated (the peer's address lost: an allow-listed token
// refused, or a nil address dereferenced).
func TestInterceptorAnswers(t *testing.T) {
	t.Parallel()
	v := newOffline(t)
	storeAnswers(v)
	scopes := MethodScopes{"/x.Reports/Read": {"reports:read"}}
	unary := v.UnaryServerInterceptor(scopes)
	stream := v.StreamServerInterceptor(scopes)
	inside := &net.TCPAddr{IP: net.ParseIP("10.3.3.3"), Port: 4000}
	outside := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 4000}
	for _, c := range []struct {
		token, method string
		from          net.Addr
		want          codes.Code
		user          string
	}{
		{"", "/x.Reports/Read", inside, codes.Unauthenticated, ""},
		{"km_good", "/x.Reports/Read", nil, codes.OK, "u-good"},
		{"km_cidr", "/x.Reports/Read", inside, codes.OK, "u-cidr"},
		{"km_cidr", "/x.Reports/Read", outside, codes.PermissionDenied, ""},
		{"km_cidr", "/x.Reports/Read", nil, codes.PermissionDenied, ""},
		{"km_noscope", "/x.Reports/Read", inside, codes.PermissionDenied, ""},
		{"km_noscope", "/x.Other/Call", inside, codes.OK, ""}, // no scope listed: a valid token
		{"km_limited", "/x.Reports/Read", inside, codes.ResourceExhausted, ""},
		{"km_revoked", "/x.Reports/Read", inside, codes.Unauthenticated, ""},
		{"km_unknown", "/x.Reports/Read", inside, codes.Unavailable, ""},
	} {
		md := metadata.Pairs("x-other", "1")
		if c.token != "" {
			md.Set("authorization", "Bearer "+c.token)
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: c.from})
		var user string
		var called bool
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: c.method}, func(ctx context.Context, _ any) (any, error) {
			called = true
			if id, ok := IdentityFrom(ctx); ok {
				user = id.UserID
			}
			return nil, nil
		})
		if status.Code(err) != c.want || called != (c.want == codes.OK) || (c.user != "" && user != c.user) {
			t.Errorf("unary %s %s from %v: %v (handler called %v, user %q), want %v %q", c.token, c.method, c.from, err, called, user, c.want, c.user)
		}
		user, called = "", false
		err = stream(nil, &contextServerStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: c.method}, func(_ any, ss grpc.ServerStream) error {
			called = true
			if id, ok := IdentityFrom(ss.Context()); ok {
				user = id.UserID
			}
			return nil
		})
		if status.Code(err) != c.want || called != (c.want == codes.OK) || (c.user != "" && user != c.user) {
			t.Errorf("stream %s %s from %v: %v (handler called %v, user %q), want %v %q", c.token, c.method, c.from, err, called, user, c.want, c.user)
		}
	}
}

// contextServerStream is a grpc.ServerStream that only has a context.
type contextServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextServerStream) Context() context.Context { return s.ctx }

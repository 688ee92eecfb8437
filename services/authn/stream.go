package authn

import (
	"context"

	"google.golang.org/grpc"
)

// StreamWithContext returns ss answering ctx from Context(): how a stream
// interceptor hands its handler a context carrying what it learned (the
// Principal, a client Identity, a clamped deadline).
func StreamWithContext(ctx context.Context, ss grpc.ServerStream) grpc.ServerStream {
	return &contextStream{ServerStream: ss, ctx: ctx}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

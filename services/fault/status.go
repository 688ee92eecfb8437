package fault

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

var grpcCodes = map[Code]codes.Code{
	Internal:           codes.Internal,
	InvalidArgument:    codes.InvalidArgument,
	NotFound:           codes.NotFound,
	AlreadyExists:      codes.AlreadyExists,
	Unauthenticated:    codes.Unauthenticated,
	PermissionDenied:   codes.PermissionDenied,
	ResourceExhausted:  codes.ResourceExhausted,
	FailedPrecondition: codes.FailedPrecondition,
	Unavailable:        codes.Unavailable,
}

// Status converts err to the gRPC status a caller sees: a fault.Error's code
// and public message; a context error's own code; anything else Internal with
// a fixed message, so no internal text ever reaches a caller.
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	var fe *Error
	if errors.As(err, &fe) {
		st := status.New(grpcCodes[fe.Code], fe.Public)
		if fe.RetryAfter > 0 {
			if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(fe.RetryAfter)}); err == nil {
				st = d
			}
		}
		return st
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled")
	}
	return status.New(codes.Internal, "internal error")
}

// UnaryServerInterceptor turns handler errors into statuses with Status and
// logs the internal cause of server-side failures (never a request field).
func UnaryServerInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := Status(err)
		switch st.Code() {
		case codes.Internal, codes.Unavailable, codes.Unknown:
			log.ErrorContext(ctx, "rpc failed", "method", info.FullMethod, "code", st.Code().String(), "err", err.Error())
		}
		return nil, st.Err()
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming RPCs.
func StreamServerInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err == nil {
			return nil
		}
		st := Status(err)
		switch st.Code() {
		case codes.Internal, codes.Unavailable, codes.Unknown:
			log.ErrorContext(ss.Context(), "stream failed", "method", info.FullMethod, "code", st.Code().String(), "err", err.Error())
		}
		return st.Err()
	}
}

// RetryAfter returns the retry hint a status carries (a google.rpc.RetryInfo
// detail), or 0.
func RetryAfter(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().IsValid() {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

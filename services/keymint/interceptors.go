package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// maxRPCDeadline caps every RPC: a client's grpc-timeout may shorten it,
// never extend it, so no call can hold a connection or a store slot longer.
const maxRPCDeadline = 30 * time.Second

// clampDeadline gives every call a deadline of at most max.
func clampDeadline(ctx context.Context, max time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= max {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, max)
}

func deadlineUnary(max time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel := clampDeadline(ctx, max)
		defer cancel()
		return handler(ctx, req)
	}
}

func deadlineStream(max time.Duration, streaming map[string]bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if streaming[info.FullMethod] {
			// Long-lived watch streams end with the client or at shutdown.
			return handler(srv, ss)
		}
		ctx, cancel := clampDeadline(ss.Context(), max)
		defer cancel()
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// sensitiveMetadata are never logged with their values, in any spelling the
// gateway may forward them (grpcgateway- copies included).
var sensitiveMetadata = []string{"authorization", "cookie", "x-api-password", "x-keymint-session", "set-cookie"}

// redactedMetadata returns metadata safe to log: sensitive values replaced.
func redactedMetadata(md metadata.MD) map[string]string {
	out := make(map[string]string, len(md))
	for k, v := range md {
		name := strings.TrimPrefix(k, "grpcgateway-")
		redact := false
		for _, s := range sensitiveMetadata {
			if name == s {
				redact = true
				break
			}
		}
		if redact {
			out[k] = "[redacted]"
		} else {
			out[k] = strings.Join(v, ",")
		}
	}
	return out
}

// accessLogUnary writes one line per RPC: method, code, duration and peer; at
// debug level also the metadata, with credentials redacted. Request and
// response messages are never logged: they carry tokens and secrets.
func accessLogUnary(log *slog.Logger, quiet map[string]bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		level := slog.LevelInfo
		if quiet[info.FullMethod] && code == codes.OK {
			// The validation hot path would drown every other line.
			level = slog.LevelDebug
		}
		if !log.Enabled(ctx, level) {
			return resp, err
		}
		attrs := []slog.Attr{
			slog.String("method", info.FullMethod),
			slog.String("code", code.String()),
			slog.Duration("duration", time.Since(start)),
		}
		if p, ok := peer.FromContext(ctx); ok {
			attrs = append(attrs, slog.String("peer", p.Addr.String()))
		}
		if log.Enabled(ctx, slog.LevelDebug) {
			if md, ok := metadata.FromIncomingContext(ctx); ok {
				attrs = append(attrs, slog.Any("metadata", redactedMetadata(md)))
			}
		}
		log.LogAttrs(ctx, level, "rpc", attrs...)
		return resp, err
	}
}

// recoverUnary turns a panic into Internal: the stack goes to the log, never
// to the caller.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in rpc", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in stream", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

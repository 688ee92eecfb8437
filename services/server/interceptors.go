package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/requestid"
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
		return handler(srv, authn.StreamWithContext(ctx, ss))
	}
}

// loggedMetadata are the metadata keys whose values the debug access log
// shows (also as the gateway's grpcgateway- copies): known to carry no
// secret. Every other key is counted, never shown, not even by name: a
// caller may put a token or a password anywhere (a password typed into
// x-api-email, a token sent as x-api-key), and a key name can be one too.
var loggedMetadata = map[string]bool{
	":authority":               true,
	"content-type":             true,
	"user-agent":               true,
	"grpc-accept-encoding":     true,
	"accept":                   true,
	"te":                       true,
	"x-forwarded-host":         true,
	"x-request-id":             true,
	"traceparent":              true,
	clientip.MetadataIP:        true,
	clientip.MetadataUserAgent: true,
}

// maxLoggedValue bounds each logged metadata value.
const maxLoggedValue = 256

// redactedMetadata returns metadata safe to log: the values of
// loggedMetadata keys, and under "redacted" how many other keys there were.
func redactedMetadata(md metadata.MD) map[string]string {
	out := make(map[string]string, len(md))
	hidden := 0
	for k, v := range md {
		if !loggedMetadata[strings.TrimPrefix(k, "grpcgateway-")] {
			hidden++
			continue
		}
		val := strings.Join(v, ",")
		if len(val) > maxLoggedValue {
			val = val[:maxLoggedValue] + "..."
		}
		out[k] = val
	}
	if hidden > 0 {
		out["redacted"] = strconv.Itoa(hidden) + " other keys"
	}
	return out
}

// observe is the unary chain's record of every call: its RPC metrics
// (latency, count by code) and its access log line, timed by one clock
// read at each end (they were two interceptors, each reading the clock).
// It runs inside the request id, so the line has the call's id, and
// outside panic recovery, so a panic is counted and logged as the Internal
// the caller gets.
func observe(m *rpcMetrics, log *slog.Logger, quiet map[string]bool) link {
	return link{
		run: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return observeCall(ctx, m.method(info.FullMethod), log, quiet[info.FullMethod], req, info, handler)
		},
		forMethod: func(method string) grpc.UnaryServerInterceptor {
			mm, q := m.method(method), quiet[method]
			return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				return observeCall(ctx, mm, log, q, req, info, handler)
			}
		},
	}
}

// monotonicBase is the instant calls are timed from: time.Since of it
// reads the monotonic clock alone (one vDSO read), where time.Now reads
// the wall clock too (two), and a duration needs no wall clock.
var monotonicBase = time.Now()

// observeCall runs the call, records it in mm and writes its access log
// line: method, code, duration and peer; at debug level also the
// metadata, with credentials redacted. Request and response messages are
// never logged: they carry tokens and secrets. quiet: a successful call's
// line is at debug level.
func observeCall(ctx context.Context, mm *methodMetrics, log *slog.Logger, quiet bool, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Since(monotonicBase)
	resp, err := handler(ctx, req)
	elapsed := time.Since(monotonicBase) - start
	code := status.Code(err)
	mm.record(elapsed, code)
	level := slog.LevelInfo
	if quiet && code == codes.OK {
		// The validation hot path would drown every other line.
		level = slog.LevelDebug
	}
	if !log.Enabled(ctx, level) {
		return resp, err
	}
	attrs := []slog.Attr{
		slog.String("method", info.FullMethod),
		slog.String("code", code.String()),
		slog.Duration("duration", elapsed),
		slog.String("request_id", requestid.From(ctx)),
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

// callRequestID is the call's request id: the in-process gateway's (in
// the context), else the caller's x-request-id when valid, else a new one.
func callRequestID(ctx context.Context) string {
	if id := requestid.From(ctx); id != "" {
		return id
	}
	return requestid.Accept(incomingRequestID(ctx))
}

// incomingRequestID is the caller's x-request-id metadata, or "".
func incomingRequestID(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, requestid.Key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestIDUnary puts the call's request id in its context (for the access
// log) and sends it back as header metadata. It is for calls that came over
// a transport, whose contexts carry no id yet; calls made in process have
// requestIDInProcess.
func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	idCtx, value := requestid.WithAccepted(ctx, incomingRequestID(ctx))
	resp, err := handler(idCtx, req)
	// Sent once the handler is done, answer or error, which grpc-go then
	// writes behind it: the same frames as grpc.SetHeader before the
	// handler, but SendHeader keeps the map it is given where SetHeader
	// copies it (metadata.Join: a map, a slice and ~1.9k instructions of
	// every call). The map is the stream's from here on (grpc-go's binary
	// log may read it later), so it is a new one, never pooled. keymint's
	// handlers set no header metadata of their own.
	_ = grpc.SendHeader(ctx, metadata.MD{requestid.Key: value})
	return resp, err
}

// requestIDInProcess is requestIDUnary for calls made in process (the
// gateway's REST validations, introspection): the context carries the
// gateway's id already, which the gateway answers as a response header
// itself; there is no transport to send one on. Looking for it on a
// transport's call walked the whole of grpc-go's context chain for nothing
// (about 0.5 % of an ext_authz Check's CPU samples).
func requestIDInProcess(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if requestid.From(ctx) != "" {
		return handler(ctx, req)
	}
	return handler(requestid.With(ctx, requestid.New()), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	id := callRequestID(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(requestid.Key, id))
	return handler(srv, authn.StreamWithContext(requestid.With(ss.Context(), id), ss))
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

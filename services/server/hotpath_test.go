package server

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/grpc"
)

// unaryChain runs the interceptors in order around the right handler, for
// methods composed in advance and the others alike.
func TestUnaryChain(t *testing.T) {
	t.Parallel()
	var trace []string
	ic := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			trace = append(trace, name+">"+info.FullMethod)
			resp, err := h(ctx, req)
			trace = append(trace, "<"+name)
			return resp, err
		}
	}
	ics := []grpc.UnaryServerInterceptor{ic("a"), ic("b")}
	hot := &grpc.UnaryServerInfo{FullMethod: "/s/Hot"}
	pre := compose(ics, hot, func(ctx context.Context, req any) (any, error) {
		trace = append(trace, "hot")
		return "hot:" + req.(string), nil
	})
	chain := unaryChain(ics, map[string]grpc.UnaryHandler{"/s/Hot": pre})
	grpcHandler := func(ctx context.Context, req any) (any, error) {
		trace = append(trace, "handler")
		return "handler:" + req.(string), nil
	}
	for _, tc := range []struct {
		method string
		want   any
		trace  []string
	}{
		{"/s/Hot", "hot:x", []string{"a>/s/Hot", "b>/s/Hot", "hot", "<b", "<a"}},
		{"/s/Cold", "handler:x", []string{"a>/s/Cold", "b>/s/Cold", "handler", "<b", "<a"}},
	} {
		trace = nil
		resp, err := chain(context.Background(), "x", &grpc.UnaryServerInfo{FullMethod: tc.method}, grpcHandler)
		if err != nil || resp != tc.want || !reflect.DeepEqual(trace, tc.trace) {
			t.Errorf("%s: %v %v, trace %v", tc.method, resp, err, trace)
		}
	}
}

// BenchmarkUnaryChain is what composing a hot method's chain once saves
// against grpc-go style chaining per call, through six interceptors that
// only pass the call on (keymint serve's unary chain has six).
func BenchmarkUnaryChain(b *testing.B) {
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	ics := []grpc.UnaryServerInterceptor{pass, pass, pass, pass, pass, pass}
	final := func(context.Context, any) (any, error) { return nil, nil }
	hot := &grpc.UnaryServerInfo{FullMethod: "/s/Hot"}
	chain := unaryChain(ics, map[string]grpc.UnaryHandler{"/s/Hot": compose(ics, hot, final)})
	for _, method := range []string{"/s/Hot", "/s/Cold"} {
		b.Run(method[3:], func(b *testing.B) {
			info := &grpc.UnaryServerInfo{FullMethod: method}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = chain(context.Background(), nil, info, final)
			}
		})
	}
}

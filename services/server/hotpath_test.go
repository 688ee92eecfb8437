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

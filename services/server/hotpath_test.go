package server

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/grpc"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// A hot method's handler (composedMethod: its chain composed once) and
// unaryChain, for the other methods, run the interceptors in the same
// order around the right handler, the hot one each link as bound for its
// method (skipped when it binds to nil); a request that does not decode
// is refused before any interceptor, as by grpc-go's generated handlers.
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
	bound := func(method string) grpc.UnaryServerInterceptor { return ic("b@" + method) }
	skipped := func(string) grpc.UnaryServerInterceptor { return nil }
	links := []link{{run: ic("a")}, {run: ic("b"), forMethod: bound}, {run: ic("c"), forMethod: skipped}}
	hot := &grpc.UnaryServerInfo{FullMethod: "/s/Hot"}
	method := composedMethod[string](compose(links, hot, func(ctx context.Context, req any) (any, error) {
		trace = append(trace, "hot")
		return "hot:" + *req.(*string), nil
	}))
	decode := func(v any) error { *v.(*string) = "x"; return nil }
	resp, err := method(nil, context.Background(), decode, nil)
	if want := []string{"a>/s/Hot", "b@/s/Hot>/s/Hot", "hot", "<b@/s/Hot", "<a"}; err != nil || resp != "hot:x" || !reflect.DeepEqual(trace, want) {
		t.Errorf("hot: %v %v, trace %v", resp, err, trace)
	}
	trace = nil
	bad := errors.New("bad request")
	if _, err := method(nil, context.Background(), func(any) error { return bad }, nil); err != bad || trace != nil {
		t.Errorf("undecodable: %v, trace %v", err, trace)
	}

	trace = nil
	grpcHandler := func(ctx context.Context, req any) (any, error) {
		trace = append(trace, "handler")
		return "handler:" + req.(string), nil
	}
	resp, err = unaryChain(runs(links))(context.Background(), "x", &grpc.UnaryServerInfo{FullMethod: "/s/Cold"}, grpcHandler)
	if want := []string{"a>/s/Cold", "b>/s/Cold", "c>/s/Cold", "handler", "<c", "<b", "<a"}; err != nil || resp != "handler:x" || !reflect.DeepEqual(trace, want) {
		t.Errorf("cold: %v %v, trace %v", resp, err, trace)
	}
}

// withMethod replaces one method's handler and leaves the descriptor it
// copied as it was.
func TestWithMethod(t *testing.T) {
	t.Parallel()
	h := composedMethod[keymintv1.ValidateTokenRequest](nil)
	sd := withMethod(&keymintv1.TokenService_ServiceDesc, "ValidateToken", h)
	for i, m := range sd.Methods {
		orig := keymintv1.TokenService_ServiceDesc.Methods[i]
		replaced := reflect.ValueOf(m.Handler).Pointer() == reflect.ValueOf(h).Pointer()
		if m.MethodName != orig.MethodName || replaced != (m.MethodName == "ValidateToken") ||
			reflect.ValueOf(orig.Handler).Pointer() == reflect.ValueOf(h).Pointer() {
			t.Errorf("method %s: replaced %v", m.MethodName, replaced)
		}
	}
}

// BenchmarkUnaryChain is what composing a hot method's chain once saves
// against grpc-go style chaining per call, through six interceptors that
// only pass the call on (keymint serve's unary chain has six).
func BenchmarkUnaryChain(b *testing.B) {
	ics := []grpc.UnaryServerInterceptor{passOn, passOn, passOn, passOn, passOn, passOn}
	links := make([]link, len(ics))
	for i, ic := range ics {
		links[i] = link{run: ic}
	}
	final := func(context.Context, any) (any, error) { return nil, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/s/M"}
	b.Run("Hot", func(b *testing.B) {
		h := compose(links, info, final)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = h(context.Background(), nil)
		}
	})
	b.Run("Cold", func(b *testing.B) {
		chain := unaryChain(ics)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = chain(context.Background(), nil, info, final)
		}
	})
}

package server

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/keymint/keymint/services/requestid"
)

// Each gRPC call gets its own id back as header metadata, sent after the
// handler (requestIDUnary): a caller's id is kept, others get a new,
// valid, distinct one, across concurrent calls on one connection. Fails
// if calls share a header map or an id's digits (calls then answer each
// other's ids, or -race reports it).
func TestRequestIDHeaderPerCall(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(requestIDUnary))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	const calls = 200
	got := make([][]string, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			ctx := context.Background()
			if i%2 == 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, requestid.Key, fmt.Sprintf("caller-%d", i))
			}
			var header metadata.MD
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header)); err != nil {
				t.Error(err)
				return
			}
			got[i] = header.Get(requestid.Key)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ids := range got {
		if len(ids) != 1 {
			t.Fatalf("call %d: x-request-id %q, want one", i, ids)
		}
		id := ids[0]
		if i%2 == 0 && id != fmt.Sprintf("caller-%d", i) {
			t.Errorf("call %d: caller's id answered as %q", i, id)
		}
		if !requestid.Valid(id) || seen[id] {
			t.Errorf("call %d: id %q invalid or answered twice", i, id)
		}
		seen[id] = true
	}
}

// headerStream is what grpc.SetHeader and grpc.SendHeader reach of
// grpc-go's server stream: as the HTTP/2 transport does, SetHeader merges
// headers with metadata.Join, SendHeader keeps the map it is given when
// nothing was set before.
type headerStream struct{ header metadata.MD }

func (s *headerStream) Method() string { return "/s/M" }
func (s *headerStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *headerStream) SendHeader(md metadata.MD) error {
	if s.header.Len() > 0 {
		return s.SetHeader(md)
	}
	s.header = md
	return nil
}
func (s *headerStream) SetTrailer(metadata.MD) error { return nil }

// BenchmarkRequestIDUnary is the request id's share of a gRPC call: a new
// id, the header set, the id in the context.
func BenchmarkRequestIDUnary(b *testing.B) {
	final := func(context.Context, any) (any, error) { return nil, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/s/M"}
	b.ReportAllocs()
	for b.Loop() {
		ctx := grpc.NewContextWithServerTransportStream(context.Background(), &headerStream{})
		_, _ = requestIDUnary(ctx, nil, info, final)
	}
}

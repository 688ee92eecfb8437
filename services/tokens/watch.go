package tokens

import (
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/fault"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// WatchRevocations streams revocations from this replica's hub, which hears
// local revokes and, with Redis, every other replica's.
func (s *Server) WatchRevocations(_ *keymintv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[keymintv1.RevocationEvent]) error {
	if s.svc.hub == nil {
		return fault.New(fault.FailedPrecondition, "revocation streaming is not enabled")
	}
	ch, done, cancel := s.svc.hub.Subscribe()
	defer cancel()
	if err := stream.Send(&keymintv1.RevocationEvent{Subscribed: true}); err != nil {
		return err
	}
	for {
		select {
		case r := <-ch:
			if err := stream.Send(&keymintv1.RevocationEvent{TokenId: r.TokenID, RevokeTime: timestamppb.New(r.At)}); err != nil {
				return err
			}
		case <-done:
			return fault.New(fault.Unavailable, "revocation stream ended (server shutting down or client too slow); resubscribe")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

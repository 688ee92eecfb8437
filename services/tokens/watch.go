package tokens

import (
	"errors"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
)

// WatchScope is the scope a token needs for WatchRevocations when the
// server requires a credential for it (Config.WatchRequiresScope).
const WatchScope = "keymint:watch"

// WatchRevocations streams the revocation log as this replica applies it:
// the subscription confirmation, the rows after since (read from the
// store) or a resync marker, then each row as it is applied here, with
// heartbeats carrying the head in between.
func (s *Server) WatchRevocations(req *keymintv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[keymintv1.RevocationEvent]) error {
	r := s.svc.revs
	if r == nil {
		return fault.New(fault.FailedPrecondition, "revocation streaming is not enabled")
	}
	ctx := stream.Context()
	if s.svc.watchScope {
		p, ok := authn.PrincipalFrom(ctx)
		if !ok {
			return fault.New(fault.Unauthenticated, "this server requires a token with the keymint:watch scope for WatchRevocations")
		}
		if p.Method != authn.ByToken || !slices.Contains(p.Scopes, WatchScope) {
			return fault.New(fault.PermissionDenied, "WatchRevocations needs a token with the keymint:watch scope")
		}
	}
	if req.Since != nil && req.GetSince() < 0 {
		return fault.New(fault.InvalidArgument, "since must be a sequence the server sent (0 or more)")
	}
	select {
	case <-r.ready:
	default:
		return fault.New(fault.Unavailable, "the revocation log cannot be read yet; retry shortly").Retry(time.Second)
	}
	sub, head, err := r.hub.subscribe(clientKey(stream))
	switch {
	case errors.Is(err, errHubClosed):
		return fault.New(fault.Unavailable, err.Error())
	case err != nil:
		return fault.New(fault.ResourceExhausted, err.Error()).Retry(time.Second)
	}
	defer r.hub.unsubscribe(sub)

	start, resync := head, false
	var backlog []Revocation
	if req.Since != nil {
		since := req.GetSince()
		if since > head {
			// This replica may lag the one the client came from by up to a
			// poll: read the log before calling since ahead of it.
			if err := r.CatchUp(ctx); err != nil {
				return fault.StoreFailure(err, "read the revocation log")
			}
			if _, head, _ = r.hub.take(sub); since > head {
				return fault.Newf(fault.InvalidArgument, "since %d is ahead of the revocation log's head %d", since, head)
			}
			// What take drained is re-read from the log below.
		}
		oldest, _, err := r.cfg.Log.RevocationLogBounds(ctx)
		if err != nil {
			return fault.StoreFailure(err, "read the revocation log")
		}
		ok := true
		if since >= oldest-1 {
			backlog, ok, err = r.backlog(ctx, since, head)
			if err != nil {
				return fault.StoreFailure(err, "read the revocation log")
			}
		}
		if since < oldest-1 || !ok {
			resync, backlog = true, nil
		} else {
			start = since
		}
	}
	if err := stream.Send(&keymintv1.RevocationEvent{Subscribed: true, Seq: start, Resync: resync}); err != nil {
		return err
	}
	last := start
	send := func(evs []Revocation) error {
		for _, v := range evs {
			if v.Seq <= last {
				continue
			}
			if err := stream.Send(eventOf(v)); err != nil {
				return err
			}
			last = v.Seq
		}
		return nil
	}
	if err := send(backlog); err != nil {
		return err
	}
	if resync {
		last = head
	}
	// A first heartbeat at once: the client is caught up to here, and may
	// answer from its cache from now on.
	if err := stream.Send(&keymintv1.RevocationEvent{Heartbeat: true, Seq: last}); err != nil {
		return err
	}
	beat := time.NewTicker(r.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-sub.notify:
			evs, _, err := r.hub.take(sub)
			if err != nil {
				return fault.New(fault.Unavailable, err.Error())
			}
			if err := send(evs); err != nil {
				return err
			}
		case <-beat.C:
			evs, head, err := r.hub.take(sub)
			if err != nil {
				return fault.New(fault.Unavailable, err.Error())
			}
			if err := send(evs); err != nil {
				return err
			}
			if err := stream.Send(&keymintv1.RevocationEvent{Heartbeat: true, Seq: max(head, last)}); err != nil {
				return err
			}
		case <-sub.done:
			_, _, err := r.hub.take(sub)
			if errors.Is(err, errStreamTooSlow) {
				return fault.New(fault.ResourceExhausted, err.Error())
			}
			return fault.New(fault.Unavailable, errHubClosed.Error())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func eventOf(v Revocation) *keymintv1.RevocationEvent {
	return &keymintv1.RevocationEvent{TokenId: v.TokenID, RevokeTime: timestamppb.New(v.At), Seq: v.Seq, Rotated: v.Rotated}
}

// clientKey is the address streams are counted by: the peer's host.
func clientKey(stream grpc.ServerStream) string {
	p, ok := peer.FromContext(stream.Context())
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

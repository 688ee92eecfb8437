package client

import (
	"context"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Backoff between resubscribe attempts.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// watch follows keymint's revocation stream until ctx ends. When a
// subscription is confirmed the cache is cleared, since revocations sent
// while the stream was down are lost; while it is down, cached answers keep
// serving until their TTL, and unknown tokens still go to keymint.
func (v *Validator) watch(ctx context.Context) {
	defer close(v.done)
	backoff := minBackoff
	for ctx.Err() == nil {
		err := v.follow(ctx, func() { backoff = minBackoff })
		v.subscribed.Store(false)
		if ctx.Err() != nil {
			return
		}
		v.log.Warn("keymint revocation stream broke; resubscribing", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// follow runs one subscription until it breaks.
func (v *Validator) follow(ctx context.Context, onSubscribed func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := v.api.WatchRevocations(sctx, &keymintv1.WatchRevocationsRequest{})
	if err != nil {
		return err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		if ev.GetSubscribed() {
			v.clear()
			v.subscribed.Store(true)
			onSubscribed()
			v.log.Info("keymint revocation stream subscribed")
			continue
		}
		v.drop(ev.GetTokenId())
	}
}

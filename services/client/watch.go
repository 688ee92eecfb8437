package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"google.golang.org/grpc/metadata"
)

// Backoff between resubscribe attempts after the first, which is immediate.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// errSilent means the stream sent nothing (not even a heartbeat) within
// HeartbeatTimeout: the replica behind it is hung or gone.
var errSilent = errors.New("no heartbeat within the bound")

// watch follows keymint's revocation stream until ctx ends. It remembers
// the last sequence applied and resumes after it, so nothing is lost across
// a reconnect; only a resync marker (keymint no longer holds what was
// missed) or the first subscription clears the cache. While the stream is
// not live, the validator asks keymint on every call (see ValidateFrom).
func (v *Validator) watch(ctx context.Context) {
	defer close(v.done)
	var last int64
	resume := false
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		err := v.follow(ctx, &last, &resume, func() { backoff = 0 })
		v.subscribed.Store(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSilent) && v.dial != nil {
			// A fresh connection: behind a Service address it may reach
			// another replica, where the old one is stuck on a dead one.
			v.redial()
		}
		v.log.Warn("keymint revocation stream broke; resubscribing", "err", err, "backoff", backoff, "since", last)
		if backoff > 0 && !v.cfg.pause(ctx, backoff) {
			return
		}
		backoff = nextBackoff(backoff)
	}
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// nextBackoff is the pause after one of b: doubling from minBackoff, at
// most maxBackoff.
func nextBackoff(b time.Duration) time.Duration { return min(max(2*b, minBackoff), maxBackoff) }

// redial replaces the connection; the old one closes once calls on it had
// their Timeout to finish.
func (v *Validator) redial() {
	c, err := v.dial()
	if err != nil {
		v.log.Warn("keymint: redial failed", "err", err)
		return
	}
	old := v.api.Swap(c)
	time.AfterFunc(v.cfg.Timeout, func() { _ = old.close() })
}

// follow runs one subscription until it breaks or falls silent.
func (v *Validator) follow(ctx context.Context, last *int64, resume *bool, onSubscribed func()) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog: any message resets it; silence past the bound ends the
	// stream and stops answering from the cache at once.
	watchdog := time.AfterFunc(v.cfg.HeartbeatTimeout, func() {
		v.subscribed.Store(false)
		cancel(errSilent)
	})
	defer watchdog.Stop()
	req := &keymintv1.WatchRevocationsRequest{}
	if *resume {
		since := *last
		req.Since = &since
	}
	if v.cfg.WatchToken != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, authn.HeaderAuthorization, authn.Bearer(v.cfg.WatchToken))
	}
	stream, err := v.client().WatchRevocations(sctx, req)
	if err != nil {
		return orCause(sctx, err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return orCause(sctx, err)
		}
		watchdog.Reset(v.cfg.HeartbeatTimeout)
		switch {
		case ev.GetSubscribed():
			if ev.GetResync() || !*resume {
				// Revocations before this point may be missing.
				v.clear()
			}
			// Not live yet: the rows missed come next, then a heartbeat.
			*last, *resume = ev.GetSeq(), true
			v.log.Info("keymint revocation stream subscribed", "seq", *last, "resync", ev.GetResync())
		case ev.GetHeartbeat():
			if ev.GetSeq() > *last {
				// The replica applied rows this stream did not carry:
				// resume after the last one applied here.
				return fmt.Errorf("heartbeat at %d after %d: events missing", ev.GetSeq(), *last)
			}
			if !v.subscribed.Swap(true) {
				onSubscribed()
			}
		case ev.GetSeq() > *last || ev.GetSeq() == 0:
			v.drop(ev.GetTokenId(), !ev.GetRotated())
			if ev.GetSeq() > 0 {
				*last = ev.GetSeq()
			}
		}
	}
}

// orCause prefers the reason the stream's context was cancelled for.
func orCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

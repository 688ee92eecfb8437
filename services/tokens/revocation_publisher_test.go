package tokens

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/testwait"
)

// emptyLog is a revocation log with nothing in it: the publisher tests
// apply rows by hand.
type emptyLog struct{}

func (emptyLog) RevocationLogBounds(context.Context) (int64, int64, error) { return 0, 0, nil }
func (emptyLog) ListRevocations(context.Context, int64, int) ([]store.RevocationRecord, error) {
	return nil, nil
}
func (emptyLog) PruneRevocations(context.Context, time.Time) (int, error) { return 0, nil }

// revokedKeys records what a revocation did to the local cache.
type revokedKeys struct{ ids chan string }

func (c revokedKeys) Revoke(_ cache.Key, id string, _, _ time.Time) { c.ids <- id }
func (revokedKeys) Flush()                                          {}

// Committed returns once the row is applied here, while the Redis side
// (here a publish that never returns until released, as on a SIGSTOPped
// Redis) still waits; queued revocations are sent in commit order; one
// that finds the queue full is dropped and counted, never waited for.
func TestCommittedDoesNotWaitForPublish(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	sent := make(chan int64, 10)
	invalidated := make(chan cache.Key, 10)
	local := revokedKeys{ids: make(chan string, 10)}
	r := NewRevocations(RevocationsConfig{Log: emptyLog{}, Cache: local, PublishQueue: 2,
		Invalidate: func(_ context.Context, k cache.Key) error { invalidated <- k; return nil },
		Publish: func(ctx context.Context, v Revocation) error {
			<-release
			sent <- v.Seq
			return nil
		}})
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Bound) // ends, failing, a CatchUp that never stops
	defer cancel()
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	go r.RunPublisher(ctx)

	r.Committed(ctx, Revocation{Seq: 1, TokenID: "t1", Key: cache.Key{1}})
	if id := testwait.Receive(t, local.ids, "the local revocation"); id != "t1" || r.Applied() != 1 {
		t.Fatalf("applied %d (%s) when Committed returned, want 1", r.Applied(), id)
	}
	if k := testwait.Receive(t, invalidated, "the invalidation"); k != (cache.Key{1}) {
		t.Fatalf("invalidated %v", k)
	}
	// The worker now holds seq 1 in Publish; 2 and 3 fill the queue of 2;
	// 4 finds it full.
	for seq := int64(2); seq <= 4; seq++ {
		r.Committed(ctx, Revocation{Seq: seq, TokenID: "t", Key: cache.Key{byte(seq)}})
		testwait.Receive(t, local.ids, "the local revocation")
	}
	if r.Applied() != 4 || r.Unsent() != 3 || r.Dropped() != 1 {
		t.Fatalf("applied %d, unsent %d, dropped %d; want 4, 3, 1", r.Applied(), r.Unsent(), r.Dropped())
	}
	close(release)
	for _, want := range []int64{1, 2, 3} {
		if got := testwait.Receive(t, sent, "the publish"); got != want {
			t.Fatalf("published seq %d, want %d (commit order)", got, want)
		}
	}
	for _, want := range []cache.Key{{2}, {3}} {
		if k := testwait.Receive(t, invalidated, "the invalidation"); k != want {
			t.Fatalf("invalidated %v, want %v", k, want)
		}
	}
	testwait.Until(t, "the queue to be sent", func() bool { return r.Unsent() == 0 }) // the worker counts down after each send
	select {
	case seq := <-sent:
		t.Fatalf("the dropped revocation %d was published", seq)
	default:
	}

	// A no-op revocation (no log row) drops the caches but publishes nothing.
	r.Uncommitted(Revocation{TokenID: "t1", Key: cache.Key{9}})
	testwait.Receive(t, local.ids, "the local revocation")
	if k := testwait.Receive(t, invalidated, "the invalidation"); k != (cache.Key{9}) {
		t.Fatalf("invalidated %v", k)
	}
	testwait.Until(t, "the queue to be sent", func() bool { return r.Unsent() == 0 })
	select {
	case seq := <-sent:
		t.Fatalf("a no-op revocation was published (seq %d)", seq)
	default:
	}
}

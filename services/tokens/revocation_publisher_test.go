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

// A revocation heard before this replica has read the log's head, or after
// a gap the log does not fill yet (a lagging read), is still applied to the
// local cache at once: the log read that puts it in order comes later.
// Mutations (revocations.go on 7eede42): Offer's `r.applied < 0` → `>= 0`
// (line 273) and `v.Seq > r.applied` → `<=` (line 287) each leave the token
// valid here.
func TestOfferRevokesLocallyBeforeTheLogHasIt(t *testing.T) {
	t.Parallel()
	local := revokedKeys{ids: make(chan string, 10)}
	r := NewRevocations(RevocationsConfig{Log: emptyLog{}, Cache: local})
	ctx := testwait.Context(t)

	r.Offer(ctx, Revocation{Seq: 3, TokenID: "before-head", Key: cache.Key{1}})
	if id := revokedNow(local); id != "before-head" {
		t.Fatalf("Offer before the head was read revoked %q here, want before-head", id)
	}
	if err := r.CatchUp(ctx); err != nil || r.Applied() != 0 {
		t.Fatalf("catch-up of the empty log: applied %d, %v", r.Applied(), err)
	}

	// Seq 5 after 0: a gap; the log read finds nothing (as a lagging
	// replica of the store would), so it is applied here and the next
	// read is asked for.
	r.Offer(ctx, Revocation{Seq: 5, TokenID: "after-gap", Key: cache.Key{2}})
	if id := revokedNow(local); id != "after-gap" {
		t.Fatalf("Offer after the gap revoked %q here, want after-gap", id)
	}
	if r.Applied() != 0 {
		t.Fatalf("applied %d: a revocation the log has not shown moved the sequence", r.Applied())
	}
	select {
	case <-r.wake:
	default:
		t.Fatal("no catch-up asked for after the gap")
	}
}

// revokedNow is the token Offer dropped from the local cache before it
// returned ("" if none): it revokes in the caller's goroutine.
func revokedNow(c revokedKeys) string {
	select {
	case id := <-c.ids:
		return id
	default:
		return ""
	}
}

package tokens_test

import (
	"context"
	"testing"
	"time"

	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/rediscache"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/testwait"
	"github.com/keymint/keymint/services/tokens"
)

func (f *fixture) revoke(t *testing.T, r *replica, m tokens.Minted) int64 {
	t.Helper()
	if _, err := r.svc.Revoke(authn.WithPrincipal(context.Background(), f.owner), m.Token.ID); err != nil {
		t.Fatal(err)
	}
	return r.revs.Applied()
}

// Without any fast path, a replica learns a revocation made on another one
// from the store's log, and refuses the token it had cached as valid.
func TestRevocationFollowerCatchesUpFromLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.replica(t, "", ""), f.replica(t, "", "")
	m := f.mint(t, a.svc)
	if !validate(t, b.svc, m.Secret).Valid {
		t.Fatal("not valid before the revoke")
	}
	seq := f.revoke(t, a, m)
	if seq <= 0 || a.revs.Applied() != seq {
		t.Fatalf("A applied %d after its own revoke (seq %d)", a.revs.Applied(), seq)
	}
	if !validate(t, b.svc, m.Secret).Valid {
		t.Fatal("B refused before reading the log: the test would prove nothing")
	}
	if err := b.revs.CatchUp(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	if b.revs.Applied() != seq {
		t.Fatalf("B applied %d, want %d", b.revs.Applied(), seq)
	}
	if res := validate(t, b.svc, m.Secret); res.Valid || res.Reason != tokens.ReasonRevoked {
		t.Fatalf("B after catching up: %+v", res)
	}
}

// A fast-path message after a gap makes the follower read the log first,
// so the rows it missed are applied too, in order; a duplicate is ignored.
func TestRevocationFollowerFillsGapFromLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.replica(t, "", ""), f.replica(t, "", "")
	m1, m2 := f.mint(t, a.svc), f.mint(t, a.svc)
	for _, m := range []tokens.Minted{m1, m2} {
		if !validate(t, b.svc, m.Secret).Valid {
			t.Fatal("not valid")
		}
	}
	f.revoke(t, a, m1)
	seq2 := f.revoke(t, a, m2)
	// B hears only the second (the first message was lost).
	b.revs.Offer(context.Background(), tokens.Revocation{Seq: seq2, TokenID: m2.Token.ID, Key: keyOf(m2)})
	if b.revs.Applied() != seq2 {
		t.Fatalf("B applied %d, want %d", b.revs.Applied(), seq2)
	}
	for _, m := range []tokens.Minted{m1, m2} {
		if res := validate(t, b.svc, m.Secret); res.Valid {
			t.Fatalf("B still accepts %s after the gap was filled", m.Token.ID)
		}
	}
	b.revs.Offer(context.Background(), tokens.Revocation{Seq: seq2, TokenID: m2.Token.ID, Key: keyOf(m2)})
	if b.revs.Applied() != seq2 {
		t.Fatalf("a duplicate moved applied to %d", b.revs.Applied())
	}
}

// A stale Redis copy (its deletion failed) never turns a revoked token
// valid again on a replica that applied the revocation.
func TestRevokedTokenNeverValidFromStaleRedis(t *testing.T) {
	t.Parallel()
	url, prefix := redistest.URL(t), redistest.Prefix()
	f := newFixture(t)
	a, b := f.replica(t, url, prefix), f.replica(t, url, prefix)
	m := f.mint(t, a.svc)
	if !validate(t, a.svc, m.Secret).Valid { // fills Redis
		t.Fatal("not valid")
	}
	stale, err := a.remote.Get(context.Background(), []cache.Key{keyOf(m)})
	if err != nil || stale == nil {
		t.Fatalf("no Redis entry to make stale: %v, %v", stale, err)
	}
	f.revoke(t, a, m)
	// The tombstone is written after the revoke returned (the publish
	// worker): wait for it, or it would land on top of the copy put back.
	waitSent(t, a.revs)
	if err := b.revs.CatchUp(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	// Put the old entry back, as if the deletion had failed: raw writes,
	// past the tombstone.
	raw, err := rediscache.NewClient(url, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	v, err := stale.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	hexKey := prefix + "t:{" + hexOf(keyOf(m)) + "}"
	if err := raw.Set(context.Background(), hexKey, v, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if e, err := b.remote.Get(context.Background(), []cache.Key{keyOf(m)}); err != nil || e == nil || !e.RevokedAt.IsZero() {
		t.Fatalf("the stale copy is not in Redis (%+v, %v): the test would prove nothing", e, err)
	}
	if res := validate(t, b.svc, m.Secret); res.Valid || res.Reason != tokens.ReasonRevoked {
		t.Fatalf("B answered %+v from a stale Redis copy after applying the revocation", res)
	}
}

// waitSent waits until r's publish worker has done the Redis side of every
// revocation queued so far.
func waitSent(t *testing.T, r *tokens.Revocations) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); r.Unsent() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d revocations still unsent after a minute", r.Unsent())
		}
	}
}

func hexOf(k cache.Key) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(k))
	for _, b := range k {
		out = append(out, digits[b>>4], digits[b&15])
	}
	return string(out)
}

// A revocation made while Redis is down is never published; the other
// replica still learns it from the store's log (its poll), and refuses.
func TestRevocationMissedPublishCaughtUp(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Bound) // ends, failing, a CatchUp that never stops
	defer cancel()
	client, err := rediscache.NewRevocationClient(srv.URL(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	feed := rediscache.NewRevocationFeed(rediscache.RevocationFeedConfig{Client: client, Prefix: redistest.Prefix()})
	published := make(chan error, 1)
	a := f.replica(t, "", "")
	a.revs = tokens.NewRevocations(tokens.RevocationsConfig{Log: f.store, Cache: a.cache, Logger: quiet,
		Publish: func(ctx context.Context, v tokens.Revocation) error {
			err := feed.Publish(ctx, rediscache.Revocation{Seq: v.Seq, TokenID: v.TokenID, Key: v.Key, At: v.At})
			published <- err
			return err
		}})
	go a.revs.RunPublisher(ctx)
	if err := a.revs.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	a.svc = tokens.New(tokens.Config{Store: a.store, Keyring: f.keys, Format: f.fmt, Cache: a.cache, Revocations: a.revs, Logger: quiet})
	b := f.replica(t, "", "")
	m := f.mint(t, a.svc)
	if !validate(t, b.svc, m.Secret).Valid {
		t.Fatal("not valid")
	}
	srv.Stop()
	seq := f.revoke(t, a, m)
	// Bounded, generously: a Revoke that publishes nothing (as with
	// Revoke's principal check negated, which answered success having
	// done nothing) must fail the test, not hang it.
	select {
	case err := <-published:
		if err == nil {
			t.Fatal("publishing with Redis down succeeded: the test would prove nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the revocation was never published")
	}
	go b.revs.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for b.revs.Applied() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("B never read seq %d from the log (applied %d)", seq, b.revs.Applied())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := validate(t, b.svc, m.Secret); res.Valid || res.Reason != tokens.ReasonRevoked {
		t.Fatalf("B after the poll: %+v", res)
	}
}

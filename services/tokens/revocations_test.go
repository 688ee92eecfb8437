package tokens

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestRevocationHubBounds(t *testing.T) {
	t.Parallel()
	h := newRevocationHub(3, 2, 4)
	a, head, err := h.subscribe("10.0.0.1")
	if err != nil || head != 0 {
		t.Fatalf("subscribe = %v, %d", err, head)
	}
	if _, _, err := h.subscribe("10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("10.0.0.1"); !errors.Is(err, errTooManyByClient) {
		t.Fatalf("third stream from one address: %v, want errTooManyByClient", err)
	}
	c, _, err := h.subscribe("10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("10.0.0.3"); !errors.Is(err, errTooManyStreams) {
		t.Fatalf("fourth stream: %v, want errTooManyStreams", err)
	}
	h.unsubscribe(c)
	h.unsubscribe(c) // idempotent
	if h.count() != 2 {
		t.Fatalf("count = %d, want 2", h.count())
	}

	// Queues grow only as events come, and are released when taken.
	if a.queue != nil {
		t.Fatal("a new stream holds a queue before any event")
	}
	for seq := int64(1); seq <= 3; seq++ {
		h.publish(Revocation{Seq: seq, TokenID: "x"})
	}
	evs, head, err := h.take(a)
	if err != nil || len(evs) != 3 || head != 3 || a.queue != nil {
		t.Fatalf("take = %d events, head %d, %v; queue kept %v", len(evs), head, err, a.queue != nil)
	}

	// A stream that stops reading is cut off at the queue bound; the
	// publisher never waits for it, and the others keep receiving.
	b, _, err := h.subscribe("10.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	for seq := int64(4); seq <= 20; seq++ {
		h.publish(Revocation{Seq: seq, TokenID: "x"})
		if _, _, err := h.take(a); err != nil {
			t.Fatalf("the reading stream was cut off: %v", err)
		}
	}
	select {
	case <-b.done:
	default:
		t.Fatal("a stream past its queue bound was not cut off")
	}
	if _, _, err := h.take(b); !errors.Is(err, errStreamTooSlow) {
		t.Fatalf("cut-off reason %v, want errStreamTooSlow", err)
	}

	h.close()
	select {
	case <-a.done:
	default:
		t.Fatal("close did not end the streams")
	}
	if _, _, err := h.subscribe("10.0.0.9"); !errors.Is(err, errHubClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// The per-address count follows the streams that end, and the bounds are
// exact: a queue holds maxQueue events, not one more. Shown failing on
// endLocked's `h.byClient[s.client]--` → `++` (an address locked out
// after maxPerClient streams ever), its `<= 0` negated (the count dropped
// while streams remain: the limit bypassed) and `< 0` (an entry kept per
// address ever seen), and on publish's `len(s.queue) >= h.maxQueue` → `>`.
func TestRevocationHubCountsEndedStreams(t *testing.T) {
	t.Parallel()
	h := newRevocationHub(10, 2, 2)
	for range 5 { // open and close, more times than the limit
		s, _, err := h.subscribe("10.0.0.1")
		if err != nil {
			t.Fatalf("a stream after the earlier ones ended: %v", err)
		}
		h.unsubscribe(s)
	}
	if n := len(h.byClient); n != 0 {
		t.Fatalf("%d addresses counted with no stream open, want 0", n)
	}
	a, _, err := h.subscribe("10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.subscribe("10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	h.unsubscribe(a)
	if _, _, err := h.subscribe("10.0.0.1"); err != nil {
		t.Fatalf("a second stream again after one ended: %v", err)
	}
	if _, _, err := h.subscribe("10.0.0.1"); !errors.Is(err, errTooManyByClient) {
		t.Fatalf("a third stream from one address: %v, want errTooManyByClient", err)
	}

	slow, _, err := h.subscribe("10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	h.publish(Revocation{Seq: 1, TokenID: "x"})
	h.publish(Revocation{Seq: 2, TokenID: "x"})
	select {
	case <-slow.Ended():
		t.Fatal("a stream holding maxQueue (2) events was cut off")
	default:
	}
	h.publish(Revocation{Seq: 3, TokenID: "x"})
	if _, _, err := slow.Take(); !errors.Is(err, errStreamTooSlow) {
		t.Fatalf("a third event for a stream holding 2: %v, want errStreamTooSlow", err)
	}
}

// A zero RevocationsConfig takes every documented default, and a set value
// is kept: a zero Poll or Heartbeat would panic in time.NewTicker, a zero
// PublishQueue drop every revocation's Redis side, a zero MaxStreams refuse
// every WatchRevocations stream.
//
// Mutations, each seen to fail it: revocations.go NewRevocations' `<= 0`
// → `< 0` and negated, for Poll, Heartbeat, MaxStreams,
// MaxStreamsPerClient, Queue, Backlog and PublishQueue; `cfg.Logger ==
// nil` negated.
func TestRevocationsConfigDefaults(t *testing.T) {
	t.Parallel()
	r := NewRevocations(RevocationsConfig{})
	got := r.cfg
	if got.Poll != 250*time.Millisecond || got.Heartbeat != 500*time.Millisecond || got.MaxStreams != 10_000 ||
		got.MaxStreamsPerClient != 64 || got.Queue != 4096 || got.Backlog != 10_000 || got.PublishQueue != 1024 ||
		cap(r.outbox) != 1024 || r.log == nil || r.applied != -1 {
		t.Errorf("the zero config became %+v (outbox %d, applied %d)", got, cap(r.outbox), r.applied)
	}
	set := RevocationsConfig{Poll: time.Second, Heartbeat: 2 * time.Second, MaxStreams: 3, MaxStreamsPerClient: 2,
		Queue: 5, Backlog: 6, PublishQueue: 7, Logger: slog.New(slog.DiscardHandler)}
	r = NewRevocations(set)
	if got := r.cfg; got.Poll != set.Poll || got.Heartbeat != set.Heartbeat || got.MaxStreams != 3 ||
		got.MaxStreamsPerClient != 2 || got.Queue != 5 || got.Backlog != 6 || got.PublishQueue != 7 ||
		cap(r.outbox) != 7 || r.log != set.Logger {
		t.Errorf("the set config %+v became %+v", set, got)
	}
}

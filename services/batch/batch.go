// Package batch answers concurrent lookups in shared round trips: while one
// round trip is in flight, the queries that arrive wait, and the next round
// trip carries them all. There is no timer: a query that finds nothing in
// flight is sent at once, so a lone caller pays no added latency, and under
// load the round trips (and their system calls) are shared by every caller
// that arrived meanwhile.
//
// A round trip only ever carries queries that were queued before it began:
// a caller never shares an answer read before it arrived.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFull is Do's answer when MaxQueued queries wait already: the caller
// may do its own round trip.
var ErrFull = errors.New("batch: queue full")

// Func answers qs in one round trip: answers[i] is qs[i]'s. An error fails
// every query of the round trip. ctx ends after Config.Timeout or at the
// latest deadline among the queries' contexts, whichever is first, and
// carries the first query's values (such as a trace).
type Func[Q, A any] func(ctx context.Context, qs []Q) (answers []A, err error)

// Config bounds a Batcher. Zero values take the defaults.
type Config struct {
	// MaxBatch is the most queries one round trip carries (default 64).
	MaxBatch int
	// MaxQueued is the most queries waiting for a round trip (default
	// 1024); beyond it Do returns ErrFull at once.
	MaxQueued int
	// MaxInFlight is the most round trips at once (default 1). A second
	// starts only while a full batch waits: otherwise the queries wait for
	// the round trip in flight and go together.
	MaxInFlight int
	// Timeout bounds each round trip, whatever its queries' contexts allow;
	// zero leaves only their deadlines. A query waits for at most the round
	// trip in flight and then its own: two Timeouts.
	Timeout time.Duration
}

// Defaults of Config's zero values.
const (
	DefaultMaxBatch    = 64
	DefaultMaxQueued   = 1024
	DefaultMaxInFlight = 1
)

// Batcher queues queries and answers them in round trips of Func. Safe for
// concurrent use; it holds no goroutine while idle.
type Batcher[Q, A any] struct {
	run Func[Q, A]
	cfg Config

	mu       sync.Mutex
	queue    []*call[Q, A]
	inFlight int
}

type call[Q, A any] struct {
	ctx  context.Context
	q    Q
	done chan result[A]
}

type result[A any] struct {
	a   A
	err error
}

// New returns a Batcher running round trips with run.
func New[Q, A any](cfg Config, run Func[Q, A]) *Batcher[Q, A] {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	return &Batcher[Q, A]{run: run, cfg: cfg}
}

// Do answers q in the next round trip. It returns ctx's error if ctx ends
// first, and ErrFull (at once) when the queue is full.
func (b *Batcher[Q, A]) Do(ctx context.Context, q Q) (A, error) {
	c := &call[Q, A]{ctx: ctx, q: q, done: make(chan result[A], 1)}
	b.mu.Lock()
	if len(b.queue) >= b.cfg.MaxQueued {
		b.mu.Unlock()
		var zero A
		return zero, ErrFull
	}
	b.queue = append(b.queue, c)
	start := b.inFlight == 0 || (b.inFlight < b.cfg.MaxInFlight && len(b.queue) >= b.cfg.MaxBatch)
	if start {
		b.inFlight++
	}
	b.mu.Unlock()
	if start {
		go b.loop()
	}
	select {
	case r := <-c.done:
		return r.a, r.err
	case <-ctx.Done():
		// The round trip may still carry q; its answer is dropped.
		var zero A
		return zero, ctx.Err()
	}
}

// Waiting is how many queries wait for a round trip.
func (b *Batcher[Q, A]) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// loop runs round trips until the queue is empty.
func (b *Batcher[Q, A]) loop() {
	var calls []*call[Q, A]
	var qs []Q
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.cfg.MaxBatch)
		if n == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		calls = append(calls[:0], b.queue[:n]...)
		// Shift rather than reslice, so the queue's array is reused and
		// never grows past MaxQueued.
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		calls, qs = b.roundTrip(calls, qs[:0])
		clear(calls)
		clear(qs)
	}
}

// roundTrip answers calls (dropping those whose context has ended) and
// returns the slices for reuse.
func (b *Batcher[Q, A]) roundTrip(calls []*call[Q, A], qs []Q) ([]*call[Q, A], []Q) {
	// The round trip lasts as long as its most patient query may wait (each
	// caller still leaves at its own deadline, in Do), never longer than
	// Timeout. Not the earliest deadline: a caller sending a 1 ms deadline
	// with every miss would then fail the round trips, and so the lookups,
	// of everyone who shared them.
	var latest time.Time
	unbounded := false
	live := calls[:0]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.done <- result[A]{err: err}
			continue
		}
		if d, ok := c.ctx.Deadline(); !ok {
			unbounded = true
		} else if d.After(latest) {
			latest = d
		}
		live = append(live, c)
		qs = append(qs, c.q)
	}
	if len(live) == 0 {
		return live, qs
	}
	var deadline time.Time
	if !unbounded {
		deadline = latest
	}
	if b.cfg.Timeout > 0 {
		if limit := time.Now().Add(b.cfg.Timeout); deadline.IsZero() || limit.Before(deadline) {
			deadline = limit
		}
	}
	ctx := context.WithoutCancel(live[0].ctx)
	cancel := context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	answers, err := b.call(ctx, qs)
	cancel()
	if err == nil && len(answers) != len(qs) {
		err = errors.New("batch: wrong number of answers")
	}
	for i, c := range live {
		if err != nil {
			c.done <- result[A]{err: err}
			continue
		}
		c.done <- result[A]{a: answers[i]}
	}
	return live, qs
}

// call runs one round trip; a panic in it fails the round trip's queries
// instead of leaving them (and every later query) waiting forever.
func (b *Batcher[Q, A]) call(ctx context.Context, qs []Q) (answers []A, err error) {
	defer func() {
		if p := recover(); p != nil {
			answers, err = nil, fmt.Errorf("batch: round trip panicked: %v", p)
		}
	}()
	return b.run(ctx, qs)
}

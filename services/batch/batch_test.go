package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// gatedRun is a Func that answers q with q*10, records every round trip's
// queries, and holds each round trip until the test releases it.
type gatedRun struct {
	mu     sync.Mutex
	trips  [][]int
	gate   chan struct{}
	failed error
}

func newGatedRun() *gatedRun { return &gatedRun{gate: make(chan struct{})} }

func (g *gatedRun) run(ctx context.Context, qs []int) ([]int, error) {
	g.mu.Lock()
	g.trips = append(g.trips, slices.Clone(qs))
	err := g.failed
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	out := make([]int, len(qs))
	for i, q := range qs {
		out[i] = q * 10
	}
	return out, nil
}

func (g *gatedRun) release() { g.gate <- struct{}{} }

func (g *gatedRun) roundTrips() [][]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.trips)
}

// answers runs Do(q) for each q in its own goroutine; the results arrive on
// the returned channel once each call returns.
type answer struct {
	q, a int
	err  error
}

func doAll(b *Batcher[int, int], ctx context.Context, qs ...int) chan answer {
	out := make(chan answer, len(qs))
	for _, q := range qs {
		go func() {
			a, err := b.Do(ctx, q)
			out <- answer{q, a, err}
		}()
	}
	return out
}

func collect(t *testing.T, ch chan answer, n int) map[int]answer {
	t.Helper()
	got := map[int]answer{}
	for range n {
		r := <-ch
		got[r.q] = r
	}
	return got
}

// A lone query goes at once, alone; the queries that arrive while it is in
// flight are not in its round trip (they never share an answer read before
// they arrived) and all go together in the next, each with its own answer.
// Mutation: loop taking the queue before roundTrip returns (appending new
// arrivals to the trip in flight) puts 2-6 into the first trip.
func TestQueriesArrivingDuringARoundTripShareTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{}, g.run)
		ctx := context.Background()
		first := doAll(b, ctx, 1)
		synctest.Wait()
		if trips := g.roundTrips(); len(trips) != 1 || !slices.Equal(trips[0], []int{1}) {
			t.Fatalf("round trips %v, want [[1]] at once", trips)
		}
		rest := doAll(b, ctx, 2, 3, 4, 5, 6)
		synctest.Wait()
		if trips := g.roundTrips(); len(trips) != 1 {
			t.Fatalf("round trips %v while the first is in flight, want one", trips)
		}
		g.release()
		if r := <-first; r.err != nil || r.a != 10 {
			t.Fatalf("first answer %+v", r)
		}
		synctest.Wait()
		trips := g.roundTrips()
		if len(trips) != 2 || len(trips[1]) != 5 {
			t.Fatalf("round trips %v, want the five waiting queries in the second", trips)
		}
		g.release()
		for q, r := range collect(t, rest, 5) {
			if r.err != nil || r.a != q*10 {
				t.Fatalf("query %d answered %+v", q, r)
			}
		}
	})
}

// A round trip carries at most MaxBatch queries; with one in flight at a
// time, the rest wait for the next.
func TestMaxBatchSplitsRoundTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{MaxBatch: 3}, g.run)
		ctx := context.Background()
		first := doAll(b, ctx, 0)
		synctest.Wait()
		rest := doAll(b, ctx, 1, 2, 3, 4, 5, 6, 7)
		synctest.Wait()
		for range 4 {
			g.release()
			synctest.Wait()
		}
		<-first
		collect(t, rest, 7)
		trips := g.roundTrips()
		sizes := []int{}
		for _, tr := range trips {
			sizes = append(sizes, len(tr))
		}
		if !slices.Equal(sizes, []int{1, 3, 3, 1}) {
			t.Fatalf("round trip sizes %v, want [1 3 3 1]", sizes)
		}
	})
}

// With MaxInFlight 2 a second round trip starts only when a full batch
// waits, never for a lone arrival.
func TestSecondRoundTripOnlyForAFullBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{MaxBatch: 2, MaxInFlight: 2}, g.run)
		ctx := context.Background()
		a := doAll(b, ctx, 1)
		synctest.Wait()
		c := doAll(b, ctx, 2)
		synctest.Wait()
		if n := len(g.roundTrips()); n != 1 {
			t.Fatalf("%d round trips with one query waiting, want 1", n)
		}
		d := doAll(b, ctx, 3)
		synctest.Wait()
		if trips := g.roundTrips(); len(trips) != 2 || !slices.Equal(trips[1], []int{2, 3}) && !slices.Equal(trips[1], []int{3, 2}) {
			t.Fatalf("round trips %v, want a second one carrying the full batch", trips)
		}
		g.release()
		g.release()
		<-a
		<-c
		<-d
	})
}

// Beyond MaxQueued waiting queries, Do answers ErrFull at once.
func TestFullQueueAnswersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{MaxQueued: 2}, g.run)
		ctx := context.Background()
		first := doAll(b, ctx, 1)
		synctest.Wait()
		waiting := doAll(b, ctx, 2, 3)
		synctest.Wait()
		if _, err := b.Do(ctx, 4); !errors.Is(err, ErrFull) {
			t.Fatalf("Do with a full queue = %v, want ErrFull", err)
		}
		g.release()
		<-first
		synctest.Wait()
		g.release()
		for q, r := range collect(t, waiting, 2) {
			if r.err != nil || r.a != q*10 {
				t.Fatalf("query %d answered %+v", q, r)
			}
		}
	})
}

// Timeout bounds a round trip; a query waits for the one in flight and
// then its own, so at most two Timeouts.
func TestTimeoutBoundsEachRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun() // never released: every round trip runs out of time
		b := New(Config{Timeout: 50 * time.Millisecond}, g.run)
		ctx := context.Background()
		start := time.Now()
		first := doAll(b, ctx, 1)
		time.Sleep(10 * time.Millisecond)
		second := doAll(b, ctx, 2)
		r := <-first
		if !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("first: %v after %v, want a deadline after 50ms", r.err, time.Since(start))
		}
		r = <-second
		if !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("second: %v after %v, want a deadline after 100ms (the trip in flight, then its own)", r.err, time.Since(start))
		}
	})
}

// A round trip of one query ends at that query's context deadline when
// that comes before Timeout.
func TestRoundTripEndsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{Timeout: time.Hour}, g.run)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		r := <-doAll(b, ctx, 1)
		if !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) != 30*time.Millisecond {
			t.Fatalf("%v after %v, want the context's deadline after 30ms", r.err, time.Since(start))
		}
	})
}

// A caller with a short deadline does not cut short the round trip it
// shares: the others in it are still answered after that deadline, and the
// impatient caller alone gets its deadline error. Otherwise anyone could
// fail everyone's shared lookups by sending each miss with a 1 ms deadline.
// Mutation: the round trip ending at the earliest deadline fails the
// patient caller with DeadlineExceeded at 10ms.
func TestShortDeadlineDoesNotFailSharedRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{Timeout: time.Hour}, g.run)
		blocker := doAll(b, context.Background(), 1) // in flight: the next two share a trip
		synctest.Wait()
		short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		impatient := doAll(b, short, 2)
		synctest.Wait()
		patient := doAll(b, context.Background(), 3)
		synctest.Wait()
		g.release() // trip 1 ends; trip {2, 3} starts
		if r := <-blocker; r.err != nil || r.a != 10 {
			t.Fatalf("first: %+v", r)
		}
		synctest.Wait()
		if trips := g.roundTrips(); len(trips) != 2 || !slices.Equal(trips[1], []int{2, 3}) {
			t.Fatalf("round trips %v, want [1] then [2 3]", trips)
		}
		time.Sleep(20 * time.Millisecond) // past the impatient caller's deadline
		if r := <-impatient; !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("impatient caller: %+v, want its own deadline", r)
		}
		g.release()
		if r := <-patient; r.err != nil || r.a != 30 {
			t.Fatalf("patient caller: %+v, want its answer after the other's deadline", r)
		}
	})
}

// A caller that gives up returns at once; the round trip goes on for the
// others, and the batcher serves later queries.
func TestCallerGivingUpLeavesOthersServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedRun()
		b := New(Config{}, g.run)
		ctx, cancel := context.WithCancel(context.Background())
		gone := doAll(b, ctx, 1)
		synctest.Wait()
		stays := doAll(b, context.Background(), 2)
		synctest.Wait()
		cancel()
		if r := <-gone; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled caller: %+v", r)
		}
		g.release()
		synctest.Wait()
		g.release()
		if r := <-stays; r.err != nil || r.a != 20 {
			t.Fatalf("other caller: %+v", r)
		}
		later := doAll(b, context.Background(), 3)
		synctest.Wait()
		g.release()
		if r := <-later; r.err != nil || r.a != 30 {
			t.Fatalf("later caller: %+v", r)
		}
	})
}

// A round trip's error is every one of its queries' error; a panic is
// one too, and the batcher goes on.
func TestErrorsAndPanicsFailTheirRoundTripOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		g := newGatedRun()
		g.failed = boom
		b := New(Config{}, g.run)
		ctx := context.Background()
		first := doAll(b, ctx, 1)
		synctest.Wait()
		rest := doAll(b, ctx, 2, 3)
		synctest.Wait()
		g.release()
		if r := <-first; !errors.Is(r.err, boom) {
			t.Fatalf("first: %+v, want boom", r)
		}
		synctest.Wait()
		g.release()
		for _, r := range collect(t, rest, 2) {
			if !errors.Is(r.err, boom) {
				t.Fatalf("%+v, want boom", r)
			}
		}

		p := New(Config{}, func(ctx context.Context, qs []int) ([]int, error) {
			if qs[0] == 0 {
				panic("bad")
			}
			return qs, nil
		})
		if _, err := p.Do(ctx, 0); err == nil {
			t.Fatal("a panicking round trip answered no error")
		}
		if a, err := p.Do(ctx, 7); err != nil || a != 7 {
			t.Fatalf("after a panic: %d, %v", a, err)
		}
		short := New(Config{}, func(ctx context.Context, qs []int) ([]int, error) { return nil, nil })
		if _, err := short.Do(ctx, 1); err == nil {
			t.Fatal("a round trip with too few answers answered no error")
		}
	})
}

// Many callers at once, each with its own query: every one gets its own
// answer, whatever the batches were.
func TestConcurrentCallersEachGetTheirOwnAnswer(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	largest := 0
	b := New(Config{MaxBatch: 16, MaxInFlight: 2}, func(ctx context.Context, qs []int) ([]int, error) {
		mu.Lock()
		largest = max(largest, len(qs))
		mu.Unlock()
		out := make([]int, len(qs))
		for i, q := range qs {
			out[i] = -q
		}
		return out, nil
	})
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			for i := range 200 {
				q := w*1000 + i
				a, err := b.Do(context.Background(), q)
				if err != nil || a != -q {
					t.Errorf("query %d answered %d, %v", q, a, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if largest > 16 {
		t.Fatalf("a round trip carried %d queries, more than MaxBatch 16", largest)
	}
}

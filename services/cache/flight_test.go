package cache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keymint/keymint/services/testwait"
)

// A load that panics fails its callers with an error instead of crashing
// the process or leaving them waiting, and the next load of the key runs.
// Mutation: flight.go loadRecovered without its recover (the test binary
// panics).
func TestPanickingLoadFailsItsCallers(t *testing.T) {
	t.Parallel()
	c := newCache(t, Config{})
	k := key(21)
	_, err := c.Get(context.Background(), []Key{k}, func(context.Context) (*Entry, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "load panicked") {
		t.Fatalf("Get = %v, want the load's panic as an error", err)
	}
	e, err := c.Get(context.Background(), []Key{k}, func(context.Context) (*Entry, error) { return &Entry{Key: k, TokenID: "t"}, nil })
	if err != nil || e.TokenID != "t" {
		t.Fatalf("Get after the panic = %v, %v", e, err)
	}
}

// The goroutines kept to run loads are bounded: with more loads blocked at
// once than FlightWorkers, exactly FlightWorkers goroutines are kept and
// each load still runs (on one of its own). After they finish, loads run
// and none more is kept.
// Mutation: flight.go `g.workers < FlightWorkers` → `true` (kept: 100).
func TestFlightWorkersBounded(t *testing.T) {
	t.Parallel()
	g := newFlights()
	t.Cleanup(g.close)
	const n = FlightWorkers + 36
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	var fs []*flight
	for i := range n {
		f, shared := g.join(key(byte(i)), func() (*Entry, error) {
			started.Done()
			<-release
			return &Entry{TokenID: fmt.Sprint(i)}, nil
		})
		if shared {
			t.Fatalf("load %d shared another key's", i)
		}
		fs = append(fs, f)
	}
	kept := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.workers
	}
	started.Wait() // every load runs at once: none waits for a kept goroutine
	if kept := kept(); kept != FlightWorkers {
		t.Fatalf("%d goroutines kept, want %d", kept, FlightWorkers)
	}
	close(release)
	for i, f := range fs {
		testwait.Receive(t, f.done, "a load's end")
		if f.err != nil || f.e.TokenID != fmt.Sprint(i) {
			t.Fatalf("load %d = %v, %v", i, f.e, f.err)
		}
	}
	for i := range 3 * FlightWorkers {
		f, _ := g.join(key(200), func() (*Entry, error) { return &Entry{TokenID: "again"}, nil })
		testwait.Receive(t, f.done, "a load's end")
		if f.err != nil || f.e.TokenID != "again" {
			t.Fatalf("load %d after = %v, %v", i, f.e, f.err)
		}
	}
	if kept := kept(); kept != FlightWorkers {
		t.Fatalf("%d goroutines kept after, want %d", kept, FlightWorkers)
	}
}

// forget: a caller arriving after it starts a load of its own, and the
// load before it, ending later, does not end the new one's flight early.
// Mutation: flight.go `if g.m[f.key] == f` → `if true` (the third join
// starts a load while the second runs).
func TestForgetStartsANewLoad(t *testing.T) {
	t.Parallel()
	g := newFlights()
	t.Cleanup(g.close)
	t.Cleanup(g.close) // twice: a no-op, not a panic
	releaseFirst, releaseSecond := make(chan struct{}), make(chan struct{})
	first, _ := g.join(key(201), func() (*Entry, error) { <-releaseFirst; return &Entry{TokenID: "1"}, nil })
	g.forget(key(201))
	second, shared := g.join(key(201), func() (*Entry, error) { <-releaseSecond; return &Entry{TokenID: "2"}, nil })
	if shared || second == first {
		t.Fatal("a caller after forget shared the load before it")
	}
	close(releaseFirst)
	testwait.Receive(t, first.done, "the first load's end")
	third, shared := g.join(key(201), func() (*Entry, error) { return &Entry{TokenID: "3"}, nil })
	if !shared || third != second {
		t.Fatal("a caller during the second load did not share it")
	}
	close(releaseSecond)
	testwait.Receive(t, third.done, "the second load's end")
	if third.e.TokenID != "2" {
		t.Fatalf("shared load answered %q, want 2", third.e.TokenID)
	}
}

package cache

import (
	"fmt"
	"sync"
)

// FlightWorkers bounds the goroutines kept to run loads (README
// configuration table). Beyond it a load runs on a goroutine of its own.
const FlightWorkers = 64

// flights coalesces the concurrent store loads of one key into one, as
// singleflight.DoChan does, and runs them on reused goroutines. A
// goroutine started afresh for every miss began on a minimal stack and
// grew it during the load (about 25k instructions of a miss, by
// callgrind, when L2 reads still ran here too). Each caller still leaves
// at its own deadline; the load runs on, detached, for those that share
// it.
type flights struct {
	mu      sync.Mutex
	m       map[Key]*flight
	workers int // goroutines kept, at most FlightWorkers
	// tasks hands a load to a kept goroutine that waits for one; it is
	// unbuffered, so a send succeeds only when one is idle.
	tasks    chan *flight
	stop     chan struct{}
	stopOnce sync.Once
}

// flight is one load in progress, of key by load; e and err are set
// before done closes. Its fields are the task itself: no closure to
// allocate per miss.
type flight struct {
	key  Key
	load func() (*Entry, error)
	done chan struct{}
	e    *Entry
	err  error
}

func newFlights() *flights {
	return &flights{m: map[Key]*flight{}, tasks: make(chan *flight), stop: make(chan struct{})}
}

// join returns the load of key in progress, starting load if there is
// none; shared reports that another caller started it.
func (g *flights) join(key Key, load func() (*Entry, error)) (f *flight, shared bool) {
	g.mu.Lock()
	if f := g.m[key]; f != nil {
		g.mu.Unlock()
		return f, true
	}
	f = &flight{key: key, load: load, done: make(chan struct{})}
	g.m[key] = f
	g.mu.Unlock()
	g.run(f)
	return f, false
}

// fly runs f's load and ends the flight.
func (g *flights) fly(f *flight) {
	f.e, f.err = loadRecovered(f.load)
	f.load = nil // callers may hold f a while; the closure can go
	g.mu.Lock()
	if g.m[f.key] == f {
		delete(g.m, f.key)
	}
	g.mu.Unlock()
	close(f.done)
}

// forget makes the next caller of key start a load of its own rather than
// share the one in progress.
func (g *flights) forget(key Key) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
}

// run runs task on an idle kept goroutine, else on a new one, kept if
// fewer than FlightWorkers are.
func (g *flights) run(task *flight) {
	select {
	case g.tasks <- task:
		return
	default:
	}
	g.mu.Lock()
	keep := g.workers < FlightWorkers
	if keep {
		g.workers++
	}
	g.mu.Unlock()
	if !keep {
		go g.fly(task)
		return
	}
	go func() {
		for {
			g.fly(task)
			select {
			case task = <-g.tasks:
			case <-g.stop:
				return
			}
		}
	}()
}

// close stops the kept goroutines as they go idle; a second call does
// nothing (Cache.Close may be called twice).
func (g *flights) close() { g.stopOnce.Do(func() { close(g.stop) }) }

// loadRecovered runs load, making a panic its error: the load runs on a
// goroutine no request's recovery covers, and must neither take the
// process down nor leave its callers waiting.
func loadRecovered(load func() (*Entry, error)) (e *Entry, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, fmt.Errorf("cache: load panicked: %v", p)
		}
	}()
	return load()
}

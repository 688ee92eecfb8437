package accounts

import (
	"runtime"
	"sync"
)

// hashNice is the kernel nice value of a thread running argon2: the lowest
// priority, so a validation thread wanting the same CPU gets it (the kernel
// weighs nice 0 against 19 about 68 to 1).
const hashNice = 19

// onHashThread runs f on a fresh OS thread of its own at hashNice, with
// GOMAXPROCS raised by one while f runs, and waits for it.
//
// Why: Go code holds a P (the right to run Go code) until it returns or is
// preempted, about every 10 ms. At GOMAXPROCS 1 a hash therefore held the
// only P and validations queued behind it. With one more P per running hash,
// validations keep every P they had, and the kernel, not Go's scheduler,
// shares the CPU between them and the hash, in their favour.
//
// The goroutine locks its thread and exits still locked, so the runtime
// ends the thread: its nice value never reaches another goroutine. Threads
// the runtime starts while on a locked thread come from its template
// thread, so they do not inherit the nice value either.
func (h *Hasher) onHashThread(f func()) {
	boost.enter()
	defer boost.exit()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := lowerThreadPriority(); err != nil {
			h.niceErrors.Add(1) // hashing still works, at normal priority
		}
		if onHashThread != nil {
			onHashThread(h)
		}
		f()
	}()
	<-done
}

// onHashThread, set by tests only, runs on every hashing thread before the
// hash.
var onHashThread func(*Hasher)

// boost is the GOMAXPROCS boost of every Hasher in the process (GOMAXPROCS
// is process-wide): base + the hashes running. Outside hashing the process
// has exactly the Ps it had, so validation alone never runs on more CPUs
// than the container's limit gives it (a CPU quota would throttle it).
//
// Restoring base sets GOMAXPROCS explicitly, so from the first hash on Go
// no longer follows a container CPU limit changed while it runs (it read
// the limit at start). runtime.SetDefaultGOMAXPROCS would keep that, but
// would also undo a GOMAXPROCS a program set itself.
var boost = &procBoost{}

type procBoost struct {
	mu      sync.Mutex
	running int
	// base is GOMAXPROCS when the first of the running hashes started.
	base int
}

// unboosted is GOMAXPROCS without the hashes running.
func (b *procBoost) unboosted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running > 0 {
		return b.base
	}
	return runtime.GOMAXPROCS(0)
}

// enter and exit are called on the caller's thread, never on a hashing one:
// changing GOMAXPROCS stops the world, and a nice-19 thread doing that
// could be kept off the CPU while every P waits.
func (b *procBoost) enter() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		b.base = runtime.GOMAXPROCS(0)
	}
	b.running++
	runtime.GOMAXPROCS(b.base + b.running)
}

func (b *procBoost) exit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running--
	runtime.GOMAXPROCS(b.base + b.running)
}

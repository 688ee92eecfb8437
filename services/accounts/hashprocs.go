package accounts

import (
	"runtime"
	"sync"
)

// withHashP runs f, an argon2 hash, with GOMAXPROCS one higher.
//
// Why: Go code holds a P (the right to run Go code) until it blocks or is
// preempted, about every 10 ms, and argon2 never blocks. At GOMAXPROCS 1 a
// hash therefore held the only P and validations queued behind it. With
// one more P per running hash, hashes occupy at most the added Ps, the
// validation path keeps every P it had, and the kernel shares the CPUs.
//
// Not done: running the hash at a low kernel priority on a thread of its
// own (LockOSThread + setpriority). x/crypto/argon2 computes every lane
// segment in a goroutine of its own, which the runtime runs on its ordinary
// threads, so the locked thread's nice value would not reach the work.
func withHashP(f func()) {
	boost.enter()
	defer boost.exit()
	if onHash != nil {
		onHash()
	}
	f()
}

// onHash, set by tests only, runs before every hash, inside the boost.
var onHash func()

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

// enter and exit change GOMAXPROCS, which stops the world: a few tens of
// microseconds against a hash's ~100 ms.
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

package server

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultGCPercent is keymint serve's GOGC unless the environment sets one.
// The validation path allocates little but often, over a small live heap
// (tens of MB): at Go's default of 100 the collector ran so often it took
// 8-15% of a core under load (make bench, perf). At 400 it runs a quarter as
// often, for a heap a few tens of MB larger, still flat. What GOGC alone
// does not bound is a sign-in flood: every argon2 hash is --argon2-memory-kib
// of garbage, and at 400 the heap grew to five times the hashes in flight
// (815 MB against a 256 MiB budget). The soft memory limit below bounds that
// case: the collector runs early only when the heap nears it.
const DefaultGCPercent = 400

// tuneGC applies DefaultGCPercent when GOGC is not set.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// releaseStartupMemory collects the start-up's garbage (flag parsing,
// migrations, the store's first queries, route tables) and returns the
// freed pages to the OS once, before serving: the heap then starts from
// what serving keeps, and its first GC goal from that (idle RSS, README).
// One collection of a few MB of live heap: milliseconds, once.
func releaseStartupMemory() { debug.FreeOSMemory() }

// Soft memory limit (debug.SetMemoryLimit): what the Go runtime keeps its
// heap, stacks and buffers under by collecting sooner.
const (
	// memoryHeadroomMiB is the default limit's room above the memory of the
	// hashes that may run at once, for everything else (caches,
	// connections, the validation path). RSS runs some 60 MB above the
	// limit (the binary, memory Go does not manage), so the default keeps
	// a flood's peak RSS under the argon2 budget + 128 MiB.
	memoryHeadroomMiB = 64
	// cgroupShare of a container's memory limit is the most the soft limit
	// may be: the rest is for memory Go does not manage (binary, kernel
	// buffers charged to the container), so the container is not killed.
	cgroupShare = 0.9
)

// MemoryLimit is keymint serve's soft memory limit in bytes and what it came
// from: --memory-limit-mib (0: the memory of the hashes that may run at
// once, at most the argon2 budget, + memoryHeadroomMiB), lowered to
// cgroupShare of the container's cgroup limit (v2 memory.max, v1
// memory.limit_in_bytes) when there is one. cgroupLimit is 0 without one.
func MemoryLimit(flagMiB uint, hashBytes int64, cgroupLimit uint64) (int64, string) {
	limit, from := int64(flagMiB)<<20, "memory-limit-mib"
	if flagMiB == 0 {
		limit, from = hashBytes+memoryHeadroomMiB<<20, "hashing slots + 64 MiB"
	}
	if cgroupLimit > 0 && cgroupLimit < math.MaxInt64 {
		if c := int64(float64(cgroupLimit) * cgroupShare); c < limit {
			limit, from = c, "cgroup"
		}
	}
	return limit, from
}

// applyMemoryLimit sets the soft memory limit for hashes of hashBytes
// together at most, unless GOMEMLIMIT is set (Go applied it at start, and
// an operator's word wins).
func applyMemoryLimit(c *Config, hashBytes int64, log *slog.Logger) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	cg, err := memlimit.FromCgroup()
	if err != nil {
		cg = 0 // no cgroup, or no limit on it
	}
	limit, from := MemoryLimit(c.MemoryLimitMiB, hashBytes, cg)
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "mib", limit>>20, "from", from)
}

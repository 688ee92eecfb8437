package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is keymint serve's GOGC unless the environment sets one.
// The validation path allocates little but often, over a small live heap
// (tens of MB): at Go's default of 100 the collector ran so often it took
// 8-15% of a core under load (make bench, perf). At 400 it runs a quarter as
// often, for a heap a few tens of MB larger, still flat.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent when GOGC is not set.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}
}

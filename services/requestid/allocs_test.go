//go:build !race

// testing.AllocsPerRun is unreliable under the race detector, whose
// instrumentation allocates; make test runs with -race, so this file runs
// in plain `go test`.

package requestid

import (
	"context"
	"testing"
)

// TestAllocations: the validation hot path runs WithAccepted (or With)
// and From on every REST and gRPC call: one allocation, a new id's digits
// included.
func TestAllocations(t *testing.T) {
	// New's string escapes, as in use: discarded, an inlined New's
	// string could live on the stack.
	parent := context.Background()
	ctx := With(parent, "abc")
	for name, c := range map[string]struct {
		fn   func()
		want float64
	}{
		"New":                 {func() { sink = New() }, 1},
		"With":                {func() { ctx = With(parent, "abc") }, 1},
		"WithHeader":          {func() { ctx, _ = WithHeader(parent, "abc") }, 1},
		"WithAccepted, kept":  {func() { ctx, _ = WithAccepted(parent, "abc") }, 1},
		"WithAccepted, a new": {func() { ctx, _ = WithAccepted(parent, "") }, 1},
		"From":                {func() { _ = From(ctx) }, 0},
	} {
		if n := testing.AllocsPerRun(100, c.fn); n != c.want {
			t.Errorf("%s: %v allocations, want %v", name, n, c.want)
		}
	}
}

var sink string

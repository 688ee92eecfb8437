package client

import (
	"testing"
	"time"
)

// Resubscribing pauses 100ms, doubling to 2s at most. Mutations it fails
// on: minBackoff's or maxBackoff's `*` → `/` (no pause: a validator whose
// keymint is down redials in a busy loop), nextBackoff's `2*b` → `2/b`.
func TestBackoffDoublesToItsBound(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for b := time.Duration(0); len(got) < 7; {
		b = nextBackoff(b)
		got = append(got, b)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
}

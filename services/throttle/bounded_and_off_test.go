package throttle

import (
	"context"
	"testing"
	"time"
)

// A Local remembers a bounded number of keys: DefaultLocalKeys (100,000)
// for a zero or negative maxKeys, else the number given. Unbounded, an
// attacker cycling addresses or emails would grow it without end.
//
// Mutations (gremlins survivors): services/throttle/limiter.go NewLocal's
// `maxKeys <= 0` negated (a given bound replaced, a zero one kept: otter
// then bounds nothing) or `< 0` (zero kept).
func TestLocalKeysBounded(t *testing.T) {
	t.Parallel()
	if DefaultLocalKeys != 100_000 {
		t.Fatalf("DefaultLocalKeys = %d, want the documented 100000", DefaultLocalKeys)
	}
	for maxKeys, want := range map[int]uint64{0: DefaultLocalKeys, -1: DefaultLocalKeys, 7: 7} {
		l, err := NewLocal(maxKeys, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.keys.GetMaximum(); got != want {
			t.Errorf("NewLocal(%d) remembers at most %d keys, want %d", maxKeys, got, want)
		}
	}
}

// "A zero Burst is no limit" (Limit's doc), whatever its Interval: every
// Take is allowed, and Give is a no-op.
//
// Mutation (a gremlins survivor): services/throttle/limiter.go Local.Take's
// `lim.Burst <= 0` → `< 0`: a zero burst with an interval then refuses
// every event.
func TestZeroBurstIsNoLimit(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t)
	ctx := context.Background()
	for _, lim := range []Limit{{}, {Burst: 0, Interval: time.Hour}} {
		for i := range 3 {
			if ok, retry, err := l.Take(ctx, "k", lim); !ok || retry != 0 || err != nil {
				t.Fatalf("%v: take %d = %v, %v, %v; want allowed", lim, i+1, ok, retry, err)
			}
		}
		if err := l.Give(ctx, "k", lim); err != nil {
			t.Fatal(err)
		}
	}
}

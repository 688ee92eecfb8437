// Package testwait is for tests: waits for an event that fail the test
// after a generous bound instead of hanging it. The bound times nothing: it
// is there so a broken build (a mutant, a regression) that never sends the
// event fails in a minute rather than at go test's timeout, hours later on a
// mutation run.
package testwait

import (
	"context"
	"testing"
	"time"
)

// Bound is how long a wait lasts before it fails the test.
const Bound = time.Minute

// Until polls cond every millisecond until it holds.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Receive returns ch's next value.
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(Bound)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// Context is a context that ends after Bound (and when t ends): calls
// given it return an error instead of running for ever on a loop that
// never ends (gremlins' tokens revocations.go `len(rows) < revocationPage`
// negated read an empty log page after page).
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Bound)
	t.Cleanup(cancel)
	return ctx
}

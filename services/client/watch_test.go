package client

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// While keymint cannot be reached the validator resubscribes at once, then
// after pauses that double from 100ms to 2s. Mutations it fails on:
// watch's `backoff > 0` negated (one pause of 0, then none: a busy loop
// against a keymint that is down) or → `>= 0`.
func TestResubscribePauses(t *testing.T) {
	t.Parallel()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pauses := make(chan time.Duration)
	v, err := NewValidator(context.Background(), ValidatorConfig{Conn: conn,
		pause: func(ctx context.Context, d time.Duration) bool {
			select {
			case pauses <- d:
				return true
			case <-ctx.Done():
				return false
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var got []time.Duration
	for len(got) < 6 {
		select {
		case d := <-pauses:
			got = append(got, d)
		case <-time.After(time.Minute):
			// Generous: each resubscribe fails at once (nothing listens).
			t.Fatalf("no pause after %v", got)
		}
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
}

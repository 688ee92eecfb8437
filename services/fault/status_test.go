package fault

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestStatusRetryHint(t *testing.T) {
	t.Parallel()
	base := New(ResourceExhausted, "too many sign-in attempts; retry later")
	st := Status(base.Retry(20 * time.Second))
	if st.Code() != codes.ResourceExhausted || st.Message() != base.Public || RetryAfter(st) != 20*time.Second {
		t.Fatalf("status = %v, retry %v", st, RetryAfter(st))
	}
	// Retry copies: the shared sentinel is not changed.
	if base.RetryAfter != 0 {
		t.Fatal("Retry changed its receiver")
	}
	if RetryAfter(Status(base)) != 0 {
		t.Fatal("a status without a hint has one")
	}
	st = Status(StoreFailure(errors.New("dial tcp 10.0.0.7:5432: connection refused"), "create token"))
	if st.Code() != codes.Unavailable || st.Message() != "store unavailable, retry shortly" || RetryAfter(st) != StoreRetryAfter {
		t.Fatalf("store failure = %v, retry %v", st, RetryAfter(st))
	}
}

package tokens

import (
	"testing"
	"time"
)

func TestRevocationHub(t *testing.T) {
	t.Parallel()
	h := NewRevocationHub()
	ch1, done1, cancel1 := h.Subscribe()
	ch2, _, cancel2 := h.Subscribe()
	defer cancel2()
	h.Publish(Revocation{TokenID: "a", At: time.Unix(1, 0)})
	if r := <-ch1; r.TokenID != "a" {
		t.Fatalf("sub 1 got %v", r)
	}
	if r := <-ch2; r.TokenID != "a" {
		t.Fatalf("sub 2 got %v", r)
	}
	cancel1()
	select {
	case <-done1:
	default:
		t.Fatal("cancel did not end the subscription")
	}
	if h.Subscribers() != 1 {
		t.Fatalf("subscribers = %d", h.Subscribers())
	}

	// A subscriber that never reads is cut off instead of blocking publishers.
	_, slowDone, slowCancel := h.Subscribe()
	defer slowCancel()
	for i := 0; i < subscriberBuffer+1; i++ {
		h.Publish(Revocation{TokenID: "x"})
		select {
		case <-ch2: // keep the healthy subscriber drained
		default:
		}
	}
	select {
	case <-slowDone:
	default:
		t.Fatal("a full subscriber was not cut off")
	}

	h.Close()
	_, lateDone, lateCancel := h.Subscribe()
	defer lateCancel()
	select {
	case <-lateDone:
	default:
		t.Fatal("subscribing to a closed hub did not end at once")
	}
}

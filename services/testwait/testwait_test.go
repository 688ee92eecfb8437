package testwait

import (
	"testing"
)

func TestReceiveAndUntil(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if v := Receive(t, ch, "the value"); v != 7 {
		t.Fatalf("Receive = %d, want 7", v)
	}
	n := 0
	Until(t, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("Until polled %d times, want 3", n)
	}
}

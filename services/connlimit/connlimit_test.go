package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
)

// serve accepts on l into a channel until l closes.
func serve(t *testing.T, l net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 16)
	go func() {
		defer close(ch)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return ch
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A connection over its address's cap is closed at accept; closing one of
// the address's connections makes room for the next.
func TestPerAddrCap(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(raw, Config{Total: 10, PerAddr: 2})
	accepted := serve(t, l)
	dial(t, l)
	dial(t, l)
	first, second := <-accepted, <-accepted
	third := dial(t, l)
	// The server closes the third without handing it to the server loop:
	// its read ends (an event, not a timeout).
	if _, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("third connection read: %v, want EOF", err)
	}
	if n := Refused(l); n != 1 {
		t.Fatalf("refused %d, want 1", n)
	}
	first.Close()
	first.Close() // a second Close gives nothing back twice
	dial(t, l)
	if c := <-accepted; c == nil {
		t.Fatal("no room after a close")
	}
	second.Close()
	if n := Refused(l); n != 1 {
		t.Fatalf("refused %d, want 1", n)
	}
}

// Exempt addresses (trusted proxies) are not counted.
func TestPerAddrExempt(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(raw, Config{PerAddr: 1, Exempt: func(a netip.Addr) bool { return a.IsLoopback() }})
	accepted := serve(t, l)
	for range 3 {
		dial(t, l)
		<-accepted
	}
	if n := Refused(l); n != 0 {
		t.Fatalf("refused %d exempt connections", n)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/server/servertest"
)

// runGateway runs `keymint gateway` with args, as runSidecar does the sidecar.
func runGateway(ctx context.Context, args []string, w io.Writer) error {
	c, err := parseCommand[server.GatewayConfig]("gateway", args)
	if err != nil {
		return err
	}
	return server.RunGateway(ctx, *c, c.Logger(w))
}

// healthConn is a keep-alive connection to addr that has been answered
// GET /healthz once, dialled again until the port listens. Not
// servertest.WaitListening first: its probe connection would hold the
// address's one slot under a per-address cap until the server saw it
// close.
func healthConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // not listening yet
			continue
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		if err := getHealth(c, br); err != nil {
			t.Fatalf("first connection to %s: %v", addr, err)
		}
		return c, br
	}
}

// getHealth sends GET /healthz on c and reads its answer.
func getHealth(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: keymint\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// `keymint gateway` caps connections per client address as serve's HTTP
// port does: over --max-connections-per-ip, a connection is closed at once,
// and one closed makes room. Mutation: RunGateway serving lis without
// limitListener answers the second connection.
func TestGatewayCapsConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t))
	addr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	background(t, "gateway", func(ctx context.Context, w io.Writer) error {
		return runGateway(ctx, []string{"--http-addr", addr, "--grpc-endpoint", srv.grpc, "--max-connections-per-ip", "1"}, w)
	})
	first, _ := healthConn(t, addr)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	// Closed by the server before any request: the request may or may
	// not be written, and the answer is an end of stream, never a status.
	_, _ = io.WriteString(second, "GET /healthz HTTP/1.1\r\nHost: keymint\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(second), nil); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection from one address was answered %d", resp.StatusCode)
	}
	first.Close()
	// The server releases the address's slot once it has seen the close:
	// a new connection is answered from then on.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		err = getHealth(c, bufio.NewReader(c))
		c.Close()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `keymint sidecar` caps each port's connections in total: over
// --max-connections a new connection waits in the backlog, unanswered,
// and is served once one closes. It has no per-address cap (its client is
// the proxy beside it, one address). Mutation: RunSidecar serving hl
// without totalLimitListener answers the second connection at once.
func TestSidecarCapsConnectionsInTotal(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t))
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	background(t, "sidecar", func(ctx context.Context, w io.Writer) error {
		return runSidecar(ctx, []string{"--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
			"--central-addr", srv.grpc, "--max-connections", "1"}, w)
	})
	first, firstReader := healthConn(t, httpAddr)
	second, err := net.Dial("tcp", httpAddr) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, "GET /healthz HTTP/1.1\r\nHost: keymint\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The first connection is still served; the second is not, while the
	// first is open (a wrong answer here is one that comes: no timing can
	// make the capped server answer it).
	if err := getHealth(first, firstReader); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	_ = second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	secondReader := bufio.NewReader(second)
	if _, err := secondReader.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection while the first is open: %v, want no answer yet", err)
	}
	_ = second.SetReadDeadline(time.Time{})
	first.Close()
	resp, err := http.ReadResponse(secondReader, nil)
	if err != nil {
		t.Fatalf("second connection after the first closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second connection answered %d", resp.StatusCode)
	}
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"github.com/keymint/keymint/services/server"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// probeMethod answers how long the server gives the call: the deadline the
// handler sees, after every interceptor.
const probeMethod = "/keymint.test.Probe/Deadline"

// registerProbe adds the probe service to a server before it serves.
func registerProbe(s *server.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "keymint.test.Probe",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Deadline",
			Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					d, ok := ctx.Deadline()
					if !ok {
						return nil, status.Error(codes.FailedPrecondition, "no deadline")
					}
					return durationpb.New(time.Until(d)), nil
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: probeMethod}, h)
			},
		}},
	}, struct{}{})
}

// The transport limits, each tried: body size (413 before decoding), header
// size (431), a client that never finishes its headers (dropped), gRPC
// message size (ResourceExhausted), concurrent streams and metadata size (announced in the
// HTTP/2 settings), and the RPC deadline cap (a client's grpc-timeout can
// shorten it, never extend it). The numbers are the README's (1 MiB, 100
// streams, 30 s), not the code's constants, so changing a limit without
// its documentation fails here.
//
// Mutations: services/server/listeners.go `maxConcurrentStreams = 100` →
// `200`, `maxGRPCMessage = 1 << 20` → `2 << 20`; services/server/interceptors.go
// `maxRPCDeadline = 30 * time.Second` → `time.Minute`.
func TestTransportLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const email, pw = "limits@example.com", "a long test password"
	createUser(t, cfg, email, "acme", pw, false)
	srv := startServer(t, cfg, registerProbe)
	creds := map[string]string{"content-type": "application/json", "x-api-email": email, "x-api-password": pw}

	t.Run("body", func(t *testing.T) {
		t.Parallel()
		big := `{"displayData":{"name":"` + strings.Repeat("a", 2<<20) + `"}}`
		for _, path := range []string{"/api-tokens", "/v1/tokens", "/v1/tokens:validate", "/api/auth/login"} {
			resp, body := doReq(t, request(t, "POST", srv.http+path, creds), big)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than") {
				t.Errorf("POST %s with 2 MiB = %d %.200s", path, resp.StatusCode, body)
			}
		}
	})
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		req := request(t, "GET", srv.http+"/v1/tokens", creds)
		req.Header.Set("X-Padding", strings.Repeat("p", 100<<10))
		resp, _ := doReq(t, req, "")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("100 KiB of headers = %d, want 431", resp.StatusCode)
		}
		// Credential headers within the HTTP limit but over what the gRPC
		// server takes as metadata: 431 too, not an internal error.
		for _, h := range []string{"authorization", "x-api-email"} {
			req = request(t, "GET", srv.http+"/v1/tokens", creds)
			req.Header.Set(h, strings.Repeat("a", 20<<10))
			if resp, body := doReq(t, req, ""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "larger than") {
				t.Errorf("20 KiB %s = %d %s, want 431", h, resp.StatusCode, body)
			}
		}
	})
	t.Run("slow headers", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.http, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: keymint\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		// The server must hang up by itself (after its read-header
		// timeout); our own deadline is only a backstop for a broken server.
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err = io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept a connection with unfinished headers open")
		}
	})
	t.Run("grpc message", func(t *testing.T) {
		t.Parallel()
		// Just over 1 MiB is refused; just under is read (and answered).
		_, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: strings.Repeat("k", 1<<20+1024)})
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("1 MiB + 1 KiB gRPC request = %v, want ResourceExhausted", err)
		}
		r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: strings.Repeat("k", 1<<20-1024)})
		if err != nil || r.Reason != keymintv1.ValidateTokenResponse_MALFORMED {
			t.Errorf("1 MiB - 1 KiB gRPC request = %v, %v, want a MALFORMED answer", r, err)
		}
	})
	t.Run("grpc streams", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", srv.grpc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, bufio.NewReader(c))
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame %T, want SETTINGS", f)
		}
		if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 100 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (set %v), want the documented 100", v, ok)
		}
		if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v != 16<<10 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d (set %v), want %d", v, ok, 16<<10)
		}
	})
	t.Run("deadline cap", func(t *testing.T) {
		t.Parallel()
		probe := func(ctx context.Context) time.Duration {
			out := new(durationpb.Duration)
			if err := srv.conn.Invoke(ctx, probeMethod, &emptypb.Empty{}, out); err != nil {
				t.Fatal(err)
			}
			return out.AsDuration()
		}
		const documented = 30 * time.Second
		// The lower bound is generous (the handler runs a moment after the
		// interceptor set the deadline); it catches a cap far below 30 s.
		if d := probe(context.Background()); d < documented/2 || d > documented {
			t.Errorf("no client deadline: the server gave %v, want the documented %v", d, documented)
		}
		long, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if d := probe(long); d < documented/2 || d > documented {
			t.Errorf("an hour's grpc-timeout: the server gave %v, want the documented %v", d, documented)
		}
		short, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if d := probe(short); d > 5*time.Second {
			t.Errorf("a 5 s grpc-timeout: the server gave %v", d)
		}
	})
}

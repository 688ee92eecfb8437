package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/server/servertest"
)

// TestUsageLimitThroughEveryClient: a K-use token gives exactly K valid
// answers out of N uses, sequential and concurrent, through every caching
// front keymint ships: the Go client's Validator, its HTTP middleware, its
// gRPC interceptor, and the sidecar's ext_authz and forward-auth. Each of
// them caches answers; none may reuse one keymint marked noStore.
//
// Mutations this catches (each applied and seen to fail, 10 of 10 valid):
//   - services/client/validator.go ValidateFrom answers a cached noStore
//     entry from the cache (the sequential runs fail):
//     `if e.noStore { return v.direct(...) }` → `{ return e.answer(now, clientIP, scopes), nil }`;
//   - callers sharing the leader's coalesced answer reuse it (the concurrent
//     runs fail): `if e.noStore && !led {` → `if false {`.
func TestUsageLimitThroughEveryClient(t *testing.T) {
	t.Parallel()
	const uses, calls = 3, 10
	cfg := testConfig(t)
	user := account{"uses@example.com", "a long test password"}
	createUser(t, cfg, user.email, "acme", user.password, false)
	srv := startServer(t, cfg)

	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: srv.grpc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })

	// The HTTP middleware in front of a handler.
	mw := v.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// The gRPC interceptor on a real gRPC server.
	gs := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(nil)))
	healthpb.RegisterHealthServer(gs, health.NewServer()) // any handler: the interceptor decides
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	hconn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hconn.Close() })
	hc := healthpb.NewHealthClient(hconn)

	// The sidecar, with its own validator, against the same keymint.
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	background(t, "sidecar", func(ctx context.Context, w io.Writer) error {
		return runSidecar(ctx, []string{"--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
			"--central-addr", srv.grpc}, w)
	})
	sidecarHTTP := "http://" + httpAddr
	waitReady(t, sidecarHTTP)
	sconn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sconn.Close() })
	authz := authv3.NewAuthorizationClient(sconn)

	// Each front's one use: valid or not, or an error (no answer at all).
	fronts := map[string]func(token string) (bool, error){
		"validator": func(token string) (bool, error) {
			r, err := v.Validate(context.Background(), token)
			return r.Valid, err
		},
		"middleware": func(token string) (bool, error) {
			r := httptest.NewRequest("GET", "/reports", nil)
			r.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			mw.ServeHTTP(w, r)
			switch w.Code {
			case 200:
				return true, nil
			case 401:
				return false, nil
			}
			return false, fmt.Errorf("middleware answered %d", w.Code)
		},
		"interceptor": func(token string) (bool, error) {
			_, err := hc.Check(client.WithToken(context.Background(), token), &healthpb.HealthCheckRequest{})
			switch status.Code(err) {
			case codes.OK:
				return true, nil
			case codes.Unauthenticated:
				return false, nil
			}
			return false, err
		},
		"ext_authz": func(token string) (bool, error) {
			resp, err := authz.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/reports",
					Headers: map[string]string{"authorization": "Bearer " + token}}},
			}})
			if err != nil {
				return false, err
			}
			if resp.GetOkResponse() != nil {
				return true, nil
			}
			if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 401 {
				return false, fmt.Errorf("ext_authz answered %v", resp)
			}
			return false, nil
		},
		"forward-auth": func(token string) (bool, error) {
			req, err := http.NewRequest("GET", sidecarHTTP+"/v1/forward-auth", nil)
			if err != nil {
				return false, err
			}
			req.Header.Set("X-Forwarded-Uri", "/reports")
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				return true, nil
			case 401:
				return false, nil
			}
			return false, fmt.Errorf("forward-auth answered %d", resp.StatusCode)
		},
	}
	for name, use := range fronts {
		for _, concurrent := range []bool{false, true} {
			mode := "sequential"
			if concurrent {
				mode = "concurrent"
			}
			t.Run(name+"/"+mode, func(t *testing.T) {
				tok := user.mint(t, srv, &keymintv1.CreateTokenRequest{RemainingUses: proto.Int64(uses)})
				var valid atomic.Int64
				one := func() {
					ok, err := use(tok.Secret)
					if err != nil {
						t.Error(err)
					}
					if ok {
						valid.Add(1)
					}
				}
				if concurrent {
					var wg sync.WaitGroup
					for range calls {
						wg.Go(one)
					}
					wg.Wait()
				} else {
					for range calls {
						one()
					}
				}
				if valid.Load() != uses {
					t.Fatalf("%d of %d uses of a %d-use token valid through %s", valid.Load(), calls, uses, name)
				}
			})
		}
	}
}

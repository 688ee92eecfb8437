package e2e

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/server/servertest"
)

// Disabling a user while two replicas (PostgreSQL + Redis) and a keymint
// sidecar (following replica B's WatchRevocations) serve validation load:
// every one of the user's tokens is refused on all three, and once a
// front has refused a token it never answers valid for it again.
// Another user's token stays valid throughout. Deterministic: each front
// is polled (bounded) until it refuses; nothing is timed.
// Mutation: DisableUser's removeOwner revoking nothing (`AND 1 = 0` in its
// UPDATE) fails the wait for the refusal.
func TestDisableUserRefusedEverywhere(t *testing.T) {
	t.Parallel()
	base, rs := replicaSet(t, 2, redistest.Start(t).URL())
	a, b := rs[0], rs[1]
	const adminEmail, adminPassword = "root@example.com", "the admin's long password"
	const aliceEmail, alicePassword = "alice@example.com", "alice's long test password"
	createUser(t, base, adminEmail, "acme", adminPassword, true)
	createUser(t, base, aliceEmail, "acme", alicePassword, false)
	as := func(email, pw string) context.Context {
		return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", pw))
	}
	var alice []*keymintv1.CreateTokenResponse
	for i := range 3 {
		r, err := a.client.CreateToken(as(aliceEmail, alicePassword), &keymintv1.CreateTokenRequest{Name: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		alice = append(alice, r)
	}
	other := mintFull(t, a) // replicaEmail's: must stay valid

	// The sidecar follows replica B.
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	background(t, "sidecar", func(ctx context.Context, w io.Writer) error {
		return runSidecar(ctx, []string{"--sidecar-grpc-addr", grpcAddr, "--sidecar-http-addr", httpAddr,
			"--central-addr", b.grpc}, w)
	})
	waitReady(t, "http://"+httpAddr)
	sconn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sconn.Close() })
	authz := authv3.NewAuthorizationClient(sconn)

	type answer struct {
		valid  bool
		reason keymintv1.ValidateTokenResponse_Reason
	}
	fronts := map[string]func(token string) (answer, error){
		"replica A": func(token string) (answer, error) {
			r, err := a.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: token})
			return answer{r.GetValid(), r.GetReason()}, err
		},
		"replica B": func(token string) (answer, error) {
			r, err := b.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: token})
			return answer{r.GetValid(), r.GetReason()}, err
		},
		"sidecar": func(token string) (answer, error) {
			resp, err := authz.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
					Headers: map[string]string{"authorization": "Bearer " + token}}},
			}})
			if err != nil {
				return answer{}, err
			}
			if resp.GetOkResponse() != nil {
				return answer{valid: true}, nil
			}
			if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 401 {
				return answer{}, fmt.Errorf("ext_authz answered %v", resp)
			}
			return answer{}, nil
		},
	}
	// Every front caches every token as valid first.
	for name, ask := range fronts {
		for _, tok := range append(alice, other) {
			if r, err := ask(tok.Secret); err != nil || !r.valid {
				t.Fatalf("%s before the disable: %v %v", name, r, err)
			}
		}
	}

	// Validation load on all three fronts while the user is disabled. A
	// loader records, per front and token, whether it saw a refusal, and
	// fails on any valid answer after one.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg        sync.WaitGroup
		refused   sync.Map // front + token id -> true once refused
		afterward atomic.Int64
	)
	for name, ask := range fronts {
		for _, tok := range alice {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := name + " " + tok.Token.Id
				for ctx.Err() == nil {
					r, err := ask(tok.Secret)
					if err != nil {
						continue // a call cut by the end of the test
					}
					if !r.valid {
						refused.Store(key, true)
					} else if _, was := refused.Load(key); was {
						afterward.Add(1)
						t.Errorf("%s answered valid for %s after refusing it", name, tok.Token.Id)
					}
				}
			}()
		}
	}

	admin := keymintv1.NewAccountServiceClient(a.conn)
	u, err := admin.DisableUser(as(adminEmail, adminPassword), &keymintv1.DisableUserRequest{UserId: alice[0].Token.UserId})
	if err != nil {
		t.Fatal(err)
	}
	if !u.GetDisabled() {
		t.Errorf("DisableUser answered %v, want disabled", u)
	}

	// Bounded poll: each front refuses each token (the revocation bound is
	// a second; a minute covers a loaded machine).
	deadline := time.Now().Add(time.Minute)
	for name, ask := range fronts {
		for _, tok := range alice {
			for {
				r, err := ask(tok.Secret)
				if err == nil && !r.valid {
					if name != "sidecar" && r.reason != keymintv1.ValidateTokenResponse_OWNER_DISABLED {
						t.Errorf("%s refused %s with %v, want OWNER_DISABLED", name, tok.Token.Id, r.reason)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still answers %v, %v for %s a minute after the disable", name, r, err, tok.Token.Id)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	cancel()
	wg.Wait()
	// Refused once, refused for good: one more round on every front.
	for name, ask := range fronts {
		for _, tok := range alice {
			if r, err := ask(tok.Secret); err != nil || r.valid {
				t.Errorf("%s after the disable: %v %v for %s", name, r, err, tok.Token.Id)
			}
		}
		if r, err := ask(other.Secret); err != nil || !r.valid {
			t.Errorf("%s refused another user's token: %v %v", name, r, err)
		}
	}
	if n := afterward.Load(); n > 0 {
		t.Errorf("%d valid answers after a refusal", n)
	}
	// Sign-in is refused too (after the password proved who asks).
	if _, err := a.client.CreateToken(as(aliceEmail, alicePassword), &keymintv1.CreateTokenRequest{Name: "again"}); err == nil {
		t.Error("a disabled user minted a token")
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/accounts"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/tokens"
)

// testPepper is a fixed key ring for servers sharing PostgreSQL.
var testPepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// eachStore runs fn on the embedded store and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, cfg Config)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			if name == "postgres" {
				cfg.DatabaseURL = pgtest.NewDatabase(t)
				cfg.Pepper = testPepper
			}
			fn(t, cfg)
		})
	}
}

// createUserScoped is createUser with the scopes the user holds
// (comma-separated, as user create --scopes takes them).
func createUserScoped(t *testing.T, cfg Config, email, org, password string, admin bool, scopes string) {
	t.Helper()
	newUser(t, cfg.StoreConfig, server.HashConfig{Argon2MemoryKiB: 64, Argon2Time: 1},
		accounts.NewUser{Email: email, OrgName: org, Password: password, Admin: admin, Scopes: strings.Split(scopes, ",")})
}

// account is a user's credentials, for gRPC and REST.
type account struct{ email, password string }

func (a account) ctx() context.Context {
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", a.email, "x-api-password", a.password))
}

func (a account) headers() map[string]string {
	return map[string]string{"x-api-email": a.email, "x-api-password": a.password, "content-type": "application/json"}
}

func (a account) mint(t *testing.T, srv *testServer, req *keymintv1.CreateTokenRequest) *keymintv1.CreateTokenResponse {
	t.Helper()
	if req.Name == "" {
		req.Name = "t"
	}
	r, err := srv.client.CreateToken(a.ctx(), req)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return r
}

func grpcValidate(t *testing.T, srv *testServer, req *keymintv1.ValidateTokenRequest) *keymintv1.ValidateTokenResponse {
	t.Helper()
	r, err := srv.client.ValidateToken(context.Background(), req)
	if err != nil {
		t.Fatalf("ValidateToken: %v", err)
	}
	return r
}

// restValidate validates through POST /v1/tokens:validate.
func restValidate(t *testing.T, srv *testServer, body string) map[string]any {
	t.Helper()
	var out map[string]any
	if code, b := do(t, "POST", srv.http+"/v1/tokens:validate", nil, body, &out); code != 200 {
		t.Fatalf("REST validate = %d %s", code, b)
	}
	return out
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

// Org admins define the org's scopes; a user holds some of them; minting an
// undefined scope is a 400, a scope the creator lacks a 403 (gRPC and REST).
func TestScopesPolicy(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		admin := account{"admin@example.com", "admin test password"}
		dev := account{"dev@example.com", "dev test password"}
		createUser(t, cfg, admin.email, "acme", admin.password, true)
		createUserScoped(t, cfg, dev.email, "acme", dev.password, false, "deploy:read")
		srv := startServer(t, cfg)

		// Only an admin may define the org's scopes.
		body := `{"allowedScopes":["deploy:read","deploy:write"]}`
		if code, b := do(t, "PATCH", srv.http+"/v1/org/policy", dev.headers(), body, nil); code != 403 {
			t.Fatalf("PATCH policy as a non-admin = %d %s", code, b)
		}
		var pol map[string]any
		if code, b := do(t, "PATCH", srv.http+"/v1/org/policy", admin.headers(), body, &pol); code != 200 {
			t.Fatalf("PATCH policy = %d %s", code, b)
		}
		if fmt.Sprint(pol["allowedScopes"]) != "[deploy:read deploy:write]" {
			t.Fatalf("policy = %v", pol)
		}
		// Every member reads it.
		if code, b := do(t, "GET", srv.http+"/v1/org/policy", dev.headers(), "", &pol); code != 200 || fmt.Sprint(pol["allowedScopes"]) != "[deploy:read deploy:write]" {
			t.Fatalf("GET policy = %d %s", code, b)
		}

		// Escalation: dev holds deploy:read only.
		_, err := srv.client.CreateToken(dev.ctx(), &keymintv1.CreateTokenRequest{Name: "x", Scopes: []string{"deploy:write"}})
		wantCode(t, "gRPC mint of a scope the creator lacks", err, codes.PermissionDenied)
		code, b := do(t, "POST", srv.http+"/v1/tokens", dev.headers(), `{"name":"x","scopes":["deploy:write"]}`, nil)
		if code != 403 || !strings.Contains(b, "deploy:write") {
			t.Fatalf("REST mint of a scope the creator lacks = %d %s", code, b)
		}
		// Unknown in the org: a clear 400, for anyone.
		_, err = srv.client.CreateToken(admin.ctx(), &keymintv1.CreateTokenRequest{Name: "x", Scopes: []string{"deploy:delete"}})
		wantCode(t, "gRPC mint of an undefined scope", err, codes.InvalidArgument)
		code, b = do(t, "POST", srv.http+"/v1/tokens", dev.headers(), `{"name":"x","scopes":["deploy:delete"]}`, nil)
		if code != 400 || !strings.Contains(b, `not defined in this organization`) {
			t.Fatalf("REST mint of an undefined scope = %d %s", code, b)
		}
		// Held and defined: fine, and validated against required scopes.
		tok := dev.mint(t, srv, &keymintv1.CreateTokenRequest{Scopes: []string{"deploy:read"}})
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: tok.Secret, RequiredScopes: []string{"deploy:read"}}); !r.Valid {
			t.Fatalf("validate = %v", r)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: tok.Secret, RequiredScopes: []string{"deploy:write"}}); r.Reason != keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE {
			t.Fatalf("validate for a missing scope = %v", r)
		}

		// An admin grants dev deploy:write (REST); then the mint works.
		var me struct{ ID string }
		do(t, "GET", srv.http+"/v1/user", dev.headers(), "", &me)
		if code, b := do(t, "PUT", srv.http+"/v1/users/"+me.ID+"/scopes", dev.headers(), `{"scopes":["deploy:write"]}`, nil); code != 403 {
			t.Fatalf("a non-admin changing scopes = %d %s", code, b)
		}
		if code, b := do(t, "PUT", srv.http+"/v1/users/"+me.ID+"/scopes", admin.headers(), `{"scopes":["deploy:read","deploy:write"]}`, nil); code != 200 {
			t.Fatalf("PUT user scopes = %d %s", code, b)
		}
		if code, b := do(t, "PUT", srv.http+"/v1/users/"+me.ID+"/scopes", admin.headers(), `{"scopes":["nope"]}`, nil); code != 400 {
			t.Fatalf("PUT an undefined user scope = %d %s", code, b)
		}
		dev.mint(t, srv, &keymintv1.CreateTokenRequest{Scopes: []string{"deploy:write"}})
	})
}

// checkExpiresExactly validates secret until refused, asserting that no call
// that started at or after at is answered valid, and that the refusal is
// reason within a short time after at.
func checkExpiresExactly(t *testing.T, srv *testServer, secret string, at time.Time, reason keymintv1.ValidateTokenResponse_Reason) {
	t.Helper()
	for {
		start := time.Now()
		r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: secret})
		if r.Valid {
			if !start.Before(at) {
				t.Fatalf("valid at %v, %v after its expiry", start, start.Sub(at))
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if r.Reason != reason {
			t.Fatalf("refused %v, want %v", r.Reason, reason)
		}
		// Refused before the instant only if the call ended after it. No
		// bound on how late the first refusal comes: that is the loop's
		// scheduling on a loaded machine, and a valid answer to a call that
		// began at or after the instant already failed above.
		if end := time.Now(); end.Before(at) {
			t.Fatalf("refused at %v, %v before its expiry", end, at.Sub(end))
		}
		return
	}
}

// Expiry policy: the org's default and maximum lifetimes, and an expiry
// enforced at the instant on a cached token.
func TestExpiryPolicy(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		cfg.Cache.L1TTL = time.Minute // the expiry, not the TTL, must end it
		admin := account{"admin@example.com", "admin test password"}
		createUser(t, cfg, admin.email, "acme", admin.password, true)
		srv := startServer(t, cfg)
		var pol map[string]any
		if code, b := do(t, "PATCH", srv.http+"/v1/org/policy", admin.headers(),
			`{"maxTokenLifetime":"3600s","defaultTokenLifetime":"600s"}`, &pol); code != 200 {
			t.Fatalf("PATCH policy = %d %s", code, b)
		}
		// The mask named only the lifetimes: the scopes stay as they were.
		if pol["maxTokenLifetime"] != "3600s" || pol["defaultTokenLifetime"] != "600s" {
			t.Fatalf("policy = %v", pol)
		}
		before := time.Now()
		tok := admin.mint(t, srv, &keymintv1.CreateTokenRequest{})
		if exp := tok.Token.ExpireTime.AsTime(); exp.Before(before.Add(599*time.Second)) || exp.After(time.Now().Add(600*time.Second)) {
			t.Fatalf("default expiry %v, want 10 minutes from now", exp)
		}
		_, err := srv.client.CreateToken(admin.ctx(), &keymintv1.CreateTokenRequest{Name: "x", Ttl: durationpb.New(2 * time.Hour)})
		wantCode(t, "ttl beyond the org's maximum", err, codes.InvalidArgument)
		code, b := do(t, "POST", srv.http+"/v1/tokens", admin.headers(), `{"name":"x","ttl":"7200s"}`, nil)
		if code != 400 || !strings.Contains(b, "maximum token lifetime") {
			t.Fatalf("REST ttl beyond the maximum = %d %s", code, b)
		}
		if code, b := do(t, "PATCH", srv.http+"/v1/org/policy", admin.headers(), `{"defaultTokenLifetime":"7200s"}`, nil); code != 400 {
			t.Fatalf("a default beyond the maximum = %d %s", code, b)
		}

		at := time.Now().Add(1500 * time.Millisecond).Truncate(time.Microsecond)
		short := admin.mint(t, srv, &keymintv1.CreateTokenRequest{ExpireTime: timestamppb.New(at)})
		checkExpiresExactly(t, srv, short.Secret, at, keymintv1.ValidateTokenResponse_EXPIRED)
	})
}

// Rotation: the successor keeps everything (the original expiry too), the
// new secret is shown once, the old one works for the grace period (capped
// by the org) and is refused as EXPIRED exactly when it ends.
func TestRotation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		cfg.Cache.L1TTL = time.Minute
		admin := account{"admin@example.com", "admin test password"}
		createUser(t, cfg, admin.email, "acme", admin.password, true)
		srv := startServer(t, cfg)
		meta, _ := structpb.NewStruct(map[string]any{"plan": "pro", "seats": 5.0})
		expiry := time.Now().Add(48 * time.Hour).Truncate(time.Second)
		orig := admin.mint(t, srv, &keymintv1.CreateTokenRequest{
			Name: "deploy", Description: "CI", Scopes: []string{"a", "b"}, ExpireTime: timestamppb.New(expiry),
			ExternalId: "cust-9", Metadata: meta, AllowedCidrs: []string{"10.0.0.0/8"},
			RateLimit: &keymintv1.RateLimit{Limit: 1_000_000, Period: durationpb.New(time.Minute)},
		})
		// Cached before the rotation: the rotation must reach the cache.
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: orig.Secret, ClientIp: "10.1.1.1"}); !r.Valid {
			t.Fatalf("before rotation: %v", r)
		}
		var rot struct {
			Token    map[string]any `json:"token"`
			Secret   string         `json:"secret"`
			Previous map[string]any `json:"previous"`
		}
		before := time.Now()
		code, b := do(t, "POST", srv.http+"/v1/tokens/"+orig.Token.Id+":rotate", admin.headers(), `{"gracePeriod":"2s"}`, &rot)
		after := time.Now()
		if code != 200 || rot.Secret == "" || rot.Secret == orig.Secret {
			t.Fatalf("REST rotate = %d %s", code, b)
		}
		newID, _ := rot.Token["id"].(string)
		if rot.Previous["rotatedToId"] != newID || rot.Token["name"] != "deploy" || rot.Token["description"] != "CI" ||
			fmt.Sprint(rot.Token["scopes"]) != "[a b]" || rot.Token["externalId"] != "cust-9" ||
			fmt.Sprint(rot.Token["allowedCidrs"]) != "[10.0.0.0/8]" || fmt.Sprint(rot.Token["metadata"]) != "map[plan:pro seats:5]" ||
			fmt.Sprint(rot.Token["rateLimit"]) != "map[limit:1000000 period:60s]" {
			t.Fatalf("rotation answer: %s", b)
		}
		if got, _ := time.Parse(time.RFC3339, rot.Token["expireTime"].(string)); !got.Equal(expiry) {
			t.Fatalf("successor expires %v, want the original %v", got, expiry)
		}
		prevExp, _ := time.Parse(time.RFC3339Nano, rot.Previous["expireTime"].(string))
		// The grace began while the call ran: bounded by the call, not by a
		// guess at how long a call takes (stores keep microseconds).
		if prevExp.Before(before.Add(2*time.Second-time.Millisecond)) || prevExp.After(after.Add(2*time.Second)) {
			t.Fatalf("old token expires %v, want 2s after the rotation (called %v to %v)", prevExp, before, after)
		}
		r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: rot.Secret, ClientIp: "10.2.2.2"})
		if !r.Valid || r.TokenId != newID || r.ExternalId != "cust-9" || !proto.Equal(r.Metadata, meta) {
			t.Fatalf("successor: %v", r)
		}
		// Rotating the old token again is refused.
		_, err := srv.client.RotateToken(admin.ctx(), &keymintv1.RotateTokenRequest{Id: orig.Token.Id})
		wantCode(t, "second rotation", err, codes.FailedPrecondition)
		// The old secret lives exactly until the grace period ends.
		checkOld := func() {
			for {
				start := time.Now()
				r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: orig.Secret, ClientIp: "10.1.1.1"})
				if r.Valid {
					if !start.Before(prevExp) {
						t.Fatalf("old secret valid %v after its grace ended", start.Sub(prevExp))
					}
					time.Sleep(time.Millisecond)
					continue
				}
				// No upper bound on the first refusal: a valid answer to a
				// call begun after the grace already failed above.
				if r.Reason != keymintv1.ValidateTokenResponse_EXPIRED || time.Now().Before(prevExp) {
					t.Fatalf("old secret refused %v at %v (grace ends %v)", r.Reason, time.Now(), prevExp)
				}
				return
			}
		}
		checkOld()
		var got map[string]any
		do(t, "GET", srv.http+"/v1/tokens/"+orig.Token.Id, admin.headers(), "", &got)
		if got["status"] != "TOKEN_STATUS_EXPIRED" || got["rotatedToId"] != newID {
			t.Fatalf("old token now: %v", got)
		}

		// gRPC, grace 0: the old secret ends at once. The org caps grace.
		if code, b := do(t, "PATCH", srv.http+"/v1/org/policy", admin.headers(), `{"maxRotationGrace":"1s"}`, nil); code != 200 {
			t.Fatalf("PATCH = %d %s", code, b)
		}
		second, err := srv.client.RotateToken(admin.ctx(), &keymintv1.RotateTokenRequest{Id: newID, GracePeriod: durationpb.New(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(second.Previous.ExpireTime.AsTime()); left > time.Second {
			t.Fatalf("grace of 1h under a 1s cap leaves %v", left)
		}
		third, err := srv.client.RotateToken(admin.ctx(), &keymintv1.RotateTokenRequest{Id: second.Token.Id})
		if err != nil {
			t.Fatal(err)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: second.Secret, ClientIp: "10.1.1.1"}); r.Reason != keymintv1.ValidateTokenResponse_EXPIRED {
			t.Fatalf("rotated with no grace: %v", r)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: third.Secret, ClientIp: "10.1.1.1"}); !r.Valid {
			t.Fatalf("third generation: %v", r)
		}
		// A token cannot rotate a token (it cannot mint one).
		tokCtx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+third.Secret))
		_, err = srv.client.RotateToken(tokCtx, &keymintv1.RotateTokenRequest{Id: third.Token.Id})
		if status.Code(err) != codes.PermissionDenied && status.Code(err) != codes.Unauthenticated {
			t.Fatalf("rotation with a token: %v", err)
		}
	})
}

// A token with 10 uses validates exactly 10 times under 50 concurrent
// callers split across two servers sharing PostgreSQL and Redis; usage is
// shown in the list and limited tokens are marked no_store.
func TestUsageLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	base := testConfig(t)
	base.DatabaseURL = pgtest.NewDatabase(t)
	base.Pepper = testPepper
	base.Cache.RedisURL = rs.URL()
	user := account{"ops@example.com", "a long test password"}
	createUser(t, base, user.email, "acme", user.password, false)
	cfgA, cfgB := base, base
	cfgA.DataDir, cfgB.DataDir = t.TempDir(), t.TempDir()
	a, b := startServer(t, cfgA), startServer(t, cfgB)

	for round, uses := range []int64{10, 1, 37} {
		tok := user.mint(t, a, &keymintv1.CreateTokenRequest{RemainingUses: proto.Int64(uses)})
		var valid, exhausted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 50 {
			wg.Go(func() {
				<-start
				srv := []*testServer{a, b}[i%2]
				for range 2 {
					r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: tok.Secret})
					switch {
					case err != nil:
						t.Errorf("ValidateToken: %v", err)
						return
					case r.Valid:
						valid.Add(1)
						if !r.NoStore || r.RemainingUses == nil {
							t.Errorf("valid answer of a limited token: %v", r)
						}
					case r.Reason == keymintv1.ValidateTokenResponse_USAGE_EXHAUSTED:
						exhausted.Add(1)
					default:
						t.Errorf("refused %v", r.Reason)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if valid.Load() != uses || exhausted.Load() != 100-uses {
			t.Fatalf("round %d: %d uses: %d valid, %d exhausted", round, uses, valid.Load(), exhausted.Load())
		}
		var got map[string]any
		do(t, "GET", b.http+"/v1/tokens/"+tok.Token.Id, user.headers(), "", &got)
		if got["remainingUses"] != "0" {
			t.Fatalf("token after its uses: %v", got)
		}
	}
}

// restMinted is POST /v1/tokens's answer: the token as JSON and its secret.
type restMinted struct {
	Token  map[string]any
	Secret string
}

// restUserMint creates user (in org acme, not an admin) on cfg's store and
// mints a token over REST with body as that user, on srv started on cfg.
func restUserMint(t *testing.T, cfg Config, srv *testServer, user account, body string) restMinted {
	t.Helper()
	createUser(t, cfg, user.email, "acme", user.password, false)
	var created restMinted
	if code, b := do(t, "POST", srv.http+"/v1/tokens", user.headers(), body, &created); code != 200 {
		t.Fatalf("mint = %d %s", code, b)
	}
	return created
}

// Usage limits on each store alone (no Redis), through REST, and shared by
// a rotated token and its successor.
func TestUsageLimitStore(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		user := account{"u@example.com", "a long test password"}
		srv := startServer(t, cfg)
		created := restUserMint(t, cfg, srv, user, `{"name":"x","remainingUses":"4"}`)
		if created.Token["remainingUses"] != "4" {
			t.Fatalf("minted %v", created.Token)
		}
		body := `{"token":"` + created.Secret + `"}`
		for i, want := range []string{"3", "2"} {
			r := restValidate(t, srv, body)
			if r["valid"] != true || r["remainingUses"] != want || r["noStore"] != true {
				t.Fatalf("use %d: %v", i+1, r)
			}
		}
		rot, err := srv.client.RotateToken(user.ctx(), &keymintv1.RotateTokenRequest{Id: created.Token["id"].(string), GracePeriod: durationpb.New(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if rot.Token.GetRemainingUses() != 2 {
			t.Fatalf("successor shows %v uses, want the 2 left", rot.Token.RemainingUses)
		}
		// Old and new secrets draw from one counter: 2 uses in all.
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: created.Secret}); !r.Valid || r.GetRemainingUses() != 1 {
			t.Fatalf("old secret in grace: %v", r)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: rot.Secret}); !r.Valid || r.GetRemainingUses() != 0 {
			t.Fatalf("successor: %v", r)
		}
		for _, s := range []string{rot.Secret, created.Secret} {
			if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: s}); r.Reason != keymintv1.ValidateTokenResponse_USAGE_EXHAUSTED {
				t.Fatalf("after all uses: %v", r)
			}
		}
		if code, b := do(t, "POST", srv.http+"/v1/tokens", user.headers(), `{"name":"x","remainingUses":"0"}`, nil); code != 400 {
			t.Fatalf("zero uses = %d %s", code, b)
		}
	})
}

// A rate limit of N per period allows N and refuses the next with a retry
// hint: RATE_LIMITED over gRPC and REST, 429 + Retry-After through
// forward-auth and ext_authz. With Redis, replicas share the count.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%t", withRedis), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			if withRedis {
				cfg.Cache.RedisURL = redistest.Start(t).URL()
			}
			user := account{"u@example.com", "a long test password"}
			createUser(t, cfg, user.email, "acme", user.password, false)
			srv := startServer(t, cfg)
			tok := user.mint(t, srv, &keymintv1.CreateTokenRequest{RateLimit: &keymintv1.RateLimit{Limit: 3, Period: durationpb.New(time.Hour)}})
			for i := range 3 {
				if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: tok.Secret}); !r.Valid || !r.NoStore {
					t.Fatalf("use %d of 3: %v", i+1, r)
				}
			}
			r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: tok.Secret})
			if r.Reason != keymintv1.ValidateTokenResponse_RATE_LIMITED || r.RetryAfter.AsDuration() < 10*time.Minute {
				t.Fatalf("fourth use: %v", r)
			}
			if rr := restValidate(t, srv, `{"token":"`+tok.Secret+`"}`); rr["reason"] != "RATE_LIMITED" || rr["retryAfter"] == nil {
				t.Fatalf("REST fourth use: %v", rr)
			}
			req, _ := http.NewRequest("GET", srv.http+"/v1/forward-auth", nil)
			req.Header.Set("X-Original-URI", "/")
			req.Header.Set("Authorization", "Bearer "+tok.Secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("forward-auth = %d %v", resp.StatusCode, resp.Header)
			}
			cr, err := authv3.NewAuthorizationClient(srv.conn).Check(context.Background(), extAuthzRequest(tok.Secret, "10.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			denied := cr.GetDeniedResponse()
			if denied.GetStatus().GetCode() != 429 || !hasHeader(denied.GetHeaders(), "retry-after") {
				t.Fatalf("ext_authz = %v", cr)
			}
			if code, b := do(t, "POST", srv.http+"/v1/tokens", user.headers(), `{"name":"x","rateLimit":{"limit":"0","period":"60s"}}`, nil); code != 400 {
				t.Fatalf("limit 0 = %d %s", code, b)
			}
		})
	}
}

func extAuthzRequest(token, ip string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 5555}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/x", Headers: map[string]string{"authorization": "Bearer " + token}}},
	}}
}

func hasHeader(hs []*corev3.HeaderValueOption, name string) bool {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			return true
		}
	}
	return false
}

// An IP allow-list refuses callers outside it: ValidateToken's client_ip
// (gRPC and REST), ext_authz's downstream address, forward-auth's client
// under the trusted proxies, and a token used as a credential.
func TestIPAllowlist(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		cfg.Abuse.TrustedProxies = "127.0.0.1/32"
		user := account{"u@example.com", "a long test password"}
		createUser(t, cfg, user.email, "acme", user.password, false)
		srv := startServer(t, cfg)
		if _, err := srv.client.CreateToken(user.ctx(), &keymintv1.CreateTokenRequest{Name: "x", AllowedCidrs: []string{"10.0.0.0/33"}}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("bad CIDR: %v", err)
		}
		tok := user.mint(t, srv, &keymintv1.CreateTokenRequest{AllowedCidrs: []string{"10.0.0.0/8", "2001:db8::1"}})
		if fmt.Sprint(tok.Token.AllowedCidrs) != "[10.0.0.0/8 2001:db8::1/128]" {
			t.Fatalf("allowed cidrs = %v", tok.Token.AllowedCidrs)
		}
		for ip, ok := range map[string]bool{"10.1.2.3": true, "2001:db8::1": true, "::ffff:10.9.9.9": true, "192.168.1.1": false, "": false, "2001:db8::2": false} {
			r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: tok.Secret, ClientIp: ip})
			if r.Valid != ok || (!ok && (r.Reason != keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED || !r.NoStore)) {
				t.Fatalf("from %q: %v", ip, r)
			}
			if ok && fmt.Sprint(r.AllowedCidrs) != "[10.0.0.0/8 2001:db8::1/128]" {
				t.Fatalf("valid answer's allowed cidrs: %v", r.AllowedCidrs)
			}
		}
		if r := restValidate(t, srv, `{"token":"`+tok.Secret+`","clientIp":"192.168.1.1"}`); r["reason"] != "IP_NOT_ALLOWED" {
			t.Fatalf("REST from outside: %v", r)
		}
		if r := restValidate(t, srv, `{"token":"`+tok.Secret+`","clientIp":"10.0.0.7"}`); r["valid"] != true {
			t.Fatalf("REST from inside: %v", r)
		}
		if code, _ := do(t, "POST", srv.http+"/v1/tokens:validate", nil, `{"token":"`+tok.Secret+`","clientIp":"not-an-ip"}`, nil); code != 400 {
			t.Fatalf("REST with a bad client_ip = %d", code)
		}
		az := authv3.NewAuthorizationClient(srv.conn)
		for ip, allow := range map[string]bool{"10.0.0.9": true, "172.16.0.1": false} {
			cr, err := az.Check(context.Background(), extAuthzRequest(tok.Secret, ip))
			if err != nil {
				t.Fatal(err)
			}
			if (cr.GetOkResponse() != nil) != allow || (!allow && cr.GetDeniedResponse().GetStatus().GetCode() != 403) {
				t.Fatalf("ext_authz from %s: %v", ip, cr)
			}
		}
		for xff, want := range map[string]int{"": 403, "10.3.3.3": 200, "192.168.0.5": 403} {
			req, _ := http.NewRequest("GET", srv.http+"/v1/forward-auth", nil)
			req.Header.Set("X-Original-URI", "/")
			req.Header.Set("Authorization", "Bearer "+tok.Secret)
			if xff != "" {
				req.Header.Set("X-Forwarded-For", xff)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("forward-auth via 127.0.0.1 for %q = %d, want %d", xff, resp.StatusCode, want)
			}
		}
		// As a credential from 127.0.0.1 (outside): refused like any use.
		if code, _ := do(t, "GET", srv.http+"/v1/tokens", map[string]string{"authorization": "Bearer " + tok.Secret}, "", nil); code != 401 {
			t.Fatalf("token as a credential from outside its CIDRs = %d", code)
		}
	})
}

// Metadata and external id come back from ValidateToken (gRPC and REST);
// oversized metadata is refused.
func TestMetadata(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		user := account{"u@example.com", "a long test password"}
		srv := startServer(t, cfg)
		created := restUserMint(t, cfg, srv, user, `{"name":"x","externalId":"cust-7","metadata":{"tier":"gold","limits":{"rps":10},"tags":["a","b"]}}`)
		for range 2 { // a load, then a cache hit
			r := restValidate(t, srv, `{"token":"`+created.Secret+`"}`)
			if r["externalId"] != "cust-7" || fmt.Sprint(r["metadata"]) != "map[limits:map[rps:10] tags:[a b] tier:gold]" || r["noStore"] != false {
				t.Fatalf("REST validate: %v", r)
			}
		}
		g := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: created.Secret})
		if g.ExternalId != "cust-7" || g.Metadata.Fields["tier"].GetStringValue() != "gold" {
			t.Fatalf("gRPC validate: %v", g)
		}
		big := `{"name":"x","metadata":{"blob":"` + strings.Repeat("x", 5000) + `"}}`
		if code, b := do(t, "POST", srv.http+"/v1/tokens", user.headers(), big, nil); code != 400 || !strings.Contains(b, "4096") {
			t.Fatalf("oversized metadata = %d %s", code, b)
		}
	})
}

// The leak report revokes valid tokens at once, audits it, answers the same
// whatever the tokens were, needs no credentials, and is rate limited.
func TestLeakReport(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, cfg Config) {
		admin := account{"admin@example.com", "admin test password"}
		createUser(t, cfg, admin.email, "acme", admin.password, true)
		srv := startServer(t, cfg)
		leaked := admin.mint(t, srv, &keymintv1.CreateTokenRequest{Scopes: []string{"a"}})
		kept := admin.mint(t, srv, &keymintv1.CreateTokenRequest{})
		revoked := admin.mint(t, srv, &keymintv1.CreateTokenRequest{})
		if _, err := srv.client.RevokeToken(admin.ctx(), &keymintv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
			t.Fatal(err)
		}
		grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: leaked.Secret}) // cached

		unknown := mintUnknown(t, srv)
		report := func(tokens ...string) (int, string) {
			t.Helper()
			body := `{"tokens":["` + strings.Join(tokens, `","`) + `"]}`
			return do(t, "POST", srv.http+"/v1/tokens:report-leak", map[string]string{"content-type": "application/json"}, body, nil)
		}
		c1, b1 := report(leaked.Secret, unknown, "garbage")
		c2, b2 := report(unknown, revoked.Secret, "km_nope")
		if c1 != 200 || c2 != 200 || strings.TrimSpace(b1) != `{"received":3}` || b1 != b2 {
			t.Fatalf("reports answered %d %q and %d %q; want the same 200", c1, b1, c2, b2)
		}
		// The revoke runs just after the answer, unobservable from here: a
		// generous bound, not a timing claim.
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: leaked.Secret})
			if r.Reason == keymintv1.ValidateTokenResponse_REVOKED {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reported token still %v", r)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if r := grpcValidate(t, srv, &keymintv1.ValidateTokenRequest{Token: kept.Secret}); !r.Valid {
			t.Fatalf("unreported token: %v", r)
		}
		var events struct{ Events []map[string]any }
		do(t, "GET", srv.http+"/v1/audit-events", admin.headers(), "", &events)
		found := 0
		for _, e := range events.Events {
			if e["action"] == "token.leak_revoke" {
				found++
				if e["targetId"] != leaked.Token.Id || e["actorEmail"] != "leak-report" || e["clientIp"] != "127.0.0.1" {
					t.Fatalf("leak audit event: %v", e)
				}
			}
		}
		if found != 1 {
			t.Fatalf("%d leak audit events, want 1: %v", found, events.Events)
		}
		if code, _ := report(strings.Split(strings.Repeat("x,", 101), ",")[:101]...); code != 400 {
			t.Fatalf("101 tokens = %d", code)
		}
		// 10 reports at once per address, then one every 6 s (two were
		// made above, and the refused one counted too).
		var last int
		var lastResp string
		for range 10 {
			last, lastResp = report(unknown)
		}
		if last != 429 {
			t.Fatalf("report flood answered %d %s", last, lastResp)
		}
	})
}

// mintUnknown returns a well-formed token no store holds.
func mintUnknown(t *testing.T, srv *testServer) string {
	t.Helper()
	f, err := tokens.NewFormat(srv.cfg.TokenPrefix)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The Go client library never answers a usage-limited token from its cache:
// a 3-use token is good exactly 3 times through it, however many callers.
func TestClientHonoursNoStore(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	user := account{"u@example.com", "a long test password"}
	createUser(t, cfg, user.email, "acme", user.password, false)
	srv := startServer(t, cfg)
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: srv.grpc})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := user.mint(t, srv, &keymintv1.CreateTokenRequest{RemainingUses: proto.Int64(3), AllowedCidrs: []string{"10.0.0.0/8"}})
	var valid atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r, err := v.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: tok.Secret, ClientIp: "10.0.0.1"})
			if err != nil {
				t.Error(err)
				return
			}
			if r.Valid {
				valid.Add(1)
			}
		})
	}
	wg.Wait()
	if valid.Load() != 3 {
		t.Fatalf("%d valid answers through the client for a 3-use token", valid.Load())
	}
	// An allow-listed token without limits is cached, and the address is
	// checked on every hit.
	plain := user.mint(t, srv, &keymintv1.CreateTokenRequest{AllowedCidrs: []string{"10.0.0.0/8"}})
	for ip, ok := range map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "192.168.0.1": false} {
		r, err := v.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: plain.Secret, ClientIp: ip})
		if err != nil || r.Valid != ok {
			t.Fatalf("client from %s: %v, %v", ip, r, err)
		}
	}
}

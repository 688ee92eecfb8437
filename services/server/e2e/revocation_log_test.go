package e2e

import (
	"context"
	"encoding/base64"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/client"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
)

const replicaEmail, replicaPassword = "replicas@example.com", "a long test password"

// replicaSet starts n keymint servers sharing one PostgreSQL and, when
// redisURL is set, one Redis; the user replicaEmail exists.
func replicaSet(t *testing.T, n int, redisURL string, tune ...func(*Config)) (Config, []*testServer) {
	t.Helper()
	base := testConfig(t)
	base.DatabaseURL = pgtest.NewDatabase(t)
	base.Pepper = "1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	base.Cache.RedisURL = redisURL
	base.Cache.L1TTL = time.Minute // staleness would show, not age out
	for _, f := range tune {
		f(&base)
	}
	createUser(t, base, replicaEmail, "acme", replicaPassword, false)
	var out []*testServer
	for range n {
		c := base
		c.DataDir = t.TempDir()
		out = append(out, startServer(t, c))
	}
	return base, out
}

func passwordCtx() context.Context {
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", replicaEmail, "x-api-password", replicaPassword))
}

func mintFull(t *testing.T, srv *testServer) *keymintv1.CreateTokenResponse {
	t.Helper()
	r, err := srv.client.CreateToken(passwordCtx(), &keymintv1.CreateTokenRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func revoke(t *testing.T, srv *testServer, id string) {
	t.Helper()
	if _, err := srv.client.RevokeToken(passwordCtx(), &keymintv1.RevokeTokenRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
}

// watchStream opens WatchRevocations on srv (retrying while the replica has
// not read the log yet) and returns the stream and its first message.
func watchStream(t *testing.T, ctx context.Context, srv *testServer, since *int64) (grpc.ServerStreamingClient[keymintv1.RevocationEvent], *keymintv1.RevocationEvent) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := srv.client.WatchRevocations(ctx, &keymintv1.WatchRevocationsRequest{Since: since})
		if err == nil {
			var first *keymintv1.RevocationEvent
			if first, err = s.Recv(); err == nil {
				if !first.GetSubscribed() {
					t.Fatalf("first message %v, want the subscription confirmation", first)
				}
				return s, first
			}
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("WatchRevocations: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nextRevocation skips heartbeats and returns the next revocation event.
func nextRevocation(t *testing.T, s grpc.ServerStreamingClient[keymintv1.RevocationEvent]) *keymintv1.RevocationEvent {
	t.Helper()
	for {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if !ev.GetHeartbeat() {
			return ev
		}
	}
}

// A stream push means "this replica refuses the token now": a follower
// that hears it and asks the same replica at once is never told valid, for
// a revoke made on another replica (the reorder race of two Redis channels
// is gone: the push follows the local apply). Run on standalone Redis here
// and on a Redis Cluster in TestRedisClusterFastPath.
func TestPushedRevocationRefusedBySameReplica(t *testing.T) {
	t.Parallel()
	pushedThenRefused(t, redistest.Start(t).URL())
}

func pushedThenRefused(t *testing.T, redisURL string) { pushedThenRefusedWith(t, redisURL, 0) }

// pushedThenRefusedWith runs the rounds with the replicas' store poll set
// to poll (0: the default). A stream that hears nothing for a minute fails
// the test.
func pushedThenRefusedWith(t *testing.T, redisURL string, poll time.Duration) {
	_, rs := replicaSet(t, 2, redisURL, func(c *Config) { c.Revocations.Poll = poll })
	a, b := rs[0], rs[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, first := watchStream(t, ctx, b, nil)
	last := first.GetSeq()
	for i := range 15 {
		tok := mintFull(t, a)
		if r, err := b.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: tok.Secret}); err != nil || !r.GetValid() {
			t.Fatalf("round %d: before the revoke: %v %v", i, r, err)
		}
		revoke(t, a, tok.Token.Id)
		ev := nextRevocation(t, s)
		if ev.GetTokenId() != tok.Token.Id || ev.GetSeq() <= last {
			t.Fatalf("round %d: pushed %v after seq %d, want %s", i, ev, last, tok.Token.Id)
		}
		last = ev.GetSeq()
		r, err := b.client.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: tok.Secret})
		if err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_REVOKED {
			t.Fatalf("round %d: the replica that pushed the revocation answered %v %v", i, r, err)
		}
	}
}

// A follower resumes by sequence on another replica after its replica
// died, and receives what was revoked meanwhile; a since ahead of the head
// or negative is INVALID_ARGUMENT; a since older than the log keeps is
// answered with a resync marker.
func TestWatchResumesBySequence(t *testing.T) {
	t.Parallel()
	base, rs := replicaSet(t, 2, "")
	a, b := rs[0], rs[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := watchStream(t, ctx, a, nil)
	t1, t2 := mintFull(t, a), mintFull(t, b)
	revoke(t, a, t1.Token.Id)
	ev := nextRevocation(t, s)
	if ev.GetTokenId() != t1.Token.Id {
		t.Fatalf("pushed %v, want %s", ev, t1.Token.Id)
	}
	seen := ev.GetSeq()
	a.stop()
	revoke(t, b, t2.Token.Id) // while the follower is away

	s2, first := watchStream(t, ctx, b, &seen)
	if first.GetSeq() != seen || first.GetResync() {
		t.Fatalf("resumed subscription %v, want seq %d without resync", first, seen)
	}
	ev = nextRevocation(t, s2)
	if ev.GetTokenId() != t2.Token.Id || ev.GetSeq() <= seen {
		t.Fatalf("after resuming: %v, want %s after seq %d", ev, t2.Token.Id, seen)
	}
	for { // a heartbeat carries the head, which is what we have applied
		hb, err := s2.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if hb.GetHeartbeat() {
			if hb.GetSeq() != ev.GetSeq() {
				t.Fatalf("heartbeat head %d, want %d", hb.GetSeq(), ev.GetSeq())
			}
			break
		}
	}

	for _, bad := range []int64{ev.GetSeq() + 1000, -1} {
		st, err := b.client.WatchRevocations(ctx, &keymintv1.WatchRevocationsRequest{Since: &bad})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("since %d: %v, want InvalidArgument", bad, err)
		}
	}

	// Prune the log down to its newest row: since 0 is now too old.
	st, err := postgres.Open(ctx, base.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.PruneRevocations(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	_, first = watchStream(t, ctx, b, &zero)
	if !first.GetResync() || first.GetSeq() != ev.GetSeq() {
		t.Fatalf("since 0 after pruning: %v, want resync at %d", first, ev.GetSeq())
	}
}

// forwarder is a TCP proxy to a target that can change, as a Kubernetes
// Service address reaches whichever replica is up.
type forwarder struct {
	lis    net.Listener
	target atomic.Pointer[string]
	mu     sync.Mutex
	conns  []net.Conn
	// frozen holds, per connection accepted, whether it forwards nothing
	// any more (hangTo).
	frozen []*atomic.Bool
}

func newForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{lis: l}
	f.target.Store(&target)
	t.Cleanup(func() { l.Close(); f.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", *f.target.Load())
			if err != nil {
				c.Close()
				continue
			}
			frozen := new(atomic.Bool)
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.frozen = append(f.frozen, frozen)
			f.mu.Unlock()
			go pipe(up, c, frozen)
			go pipe(c, up, frozen)
		}
	}()
	return f
}

func (f *forwarder) addr() string { return f.lis.Addr().String() }

// switchTo sends new connections to target and cuts the current ones.
func (f *forwarder) switchTo(target string) {
	f.target.Store(&target)
	f.cut()
}

// hangTo sends new connections to target and leaves the current ones
// open but silent both ways, as a replica that hangs (no FIN, no RST).
func (f *forwarder) hangTo(target string) {
	f.target.Store(&target)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fr := range f.frozen {
		fr.Store(true)
	}
}

// pipe copies src to dst, dropping what it reads once frozen, and closes
// dst when src ends.
func pipe(dst, src net.Conn, frozen *atomic.Bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *forwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// subscribedBehindForwarder starts a forwarder to target and a Go client
// validator (a minute's cache TTL) dialling the forwarder's address, closed
// when the test ends, and waits until its revocation stream is live.
func subscribedBehindForwarder(t *testing.T, target string) (*forwarder, *client.Validator) {
	t.Helper()
	fw := newForwarder(t, target)
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: fw.addr(), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	waitFor(t, "validator subscribed", v.Subscribed)
	return fw, v
}

// A Go client validator behind one address: its replica dies, the address
// now reaches another replica; the validator resumes there by sequence and
// refuses a token revoked while it was away (its cache had it valid, with
// a TTL of a minute).
func TestValidatorResumesOnAnotherReplica(t *testing.T) {
	t.Parallel()
	_, rs := replicaSet(t, 2, "")
	a, b := rs[0], rs[1]
	fw, v := subscribedBehindForwarder(t, a.grpc)
	tok := mintFull(t, a)
	if r, err := v.Validate(context.Background(), tok.Secret); err != nil || !r.Valid {
		t.Fatalf("before: %+v %v", r, err)
	}
	a.stop()
	fw.switchTo(b.grpc)
	revoke(t, b, tok.Token.Id)
	// Subscribed may still be true for a moment from the dead stream: wait
	// for the refusal itself (the cache alone would answer valid for a
	// minute), then for the stream to be live on B.
	waitFor(t, "the validator refuses the token revoked while it was away", func() bool {
		r, err := v.Validate(context.Background(), tok.Secret)
		return err == nil && !r.Valid
	})
	waitFor(t, "validator subscribed on the other replica", v.Subscribed)
	if r, err := v.Validate(context.Background(), tok.Secret); err != nil || r.Valid {
		t.Fatalf("after resuming on B: %+v %v, want refused", r, err)
	}
}

// A Go client validator behind one address whose replica hangs (its
// connection stays open and carries nothing): after HeartbeatTimeout of
// silence it redials, reaches the other replica and is live there, and a
// token revoked meanwhile is refused (its cache had it valid for a
// minute). On the old connection it would wait on the hung replica for
// ever (no keepalive sees a silent peer). Mutations it fails on
// (services/client/watch.go): watch's `v.dial != nil` negated, orCause's
// `c != nil` negated (errSilent lost: no redial), redial's `err != nil`
// negated (the fresh connection never used).
func TestValidatorRedialsAfterSilence(t *testing.T) {
	t.Parallel()
	_, rs := replicaSet(t, 2, "")
	a, b := rs[0], rs[1]
	fw, v := subscribedBehindForwarder(t, a.grpc)
	tok := mintFull(t, b)
	if r, err := v.Validate(context.Background(), tok.Secret); err != nil || !r.Valid {
		t.Fatalf("before: %+v %v", r, err)
	}
	fw.hangTo(b.grpc)
	revoke(t, b, tok.Token.Id)
	// The redial follows the silence within milliseconds, too fast to see
	// Subscribed turn false: wait for the refusal itself (asked on the hung
	// connection, keymint times out and the cached valid answer serves).
	waitFor(t, "the validator refuses the token revoked behind the silence", func() bool {
		r, err := v.Validate(context.Background(), tok.Secret)
		return err == nil && !r.Valid
	})
	waitFor(t, "validator subscribed on the other replica", v.Subscribed)
	if r, err := v.Validate(context.Background(), tok.Secret); err != nil || r.Valid {
		t.Fatalf("after redialling to B: %+v %v, want refused", r, err)
	}
}

// On a real 3-master Redis Cluster the fast path works: with the store
// poll turned down to once an hour, each revocation still reaches the other
// replica (and its streams) through the Cluster's pub/sub, and the pushing
// replica refuses the token.
func TestRedisClusterFastPath(t *testing.T) {
	t.Parallel()
	pushedThenRefusedWith(t, redistest.StartCluster(t).URL, time.Hour)
}

// With --watch-require-scope, WatchRevocations needs a token carrying
// keymint:watch: none is Unauthenticated, another token PermissionDenied;
// a validator given one follows the stream.
func TestWatchRequiresScope(t *testing.T) {
	t.Parallel()
	_, rs := replicaSet(t, 1, "", func(c *Config) { c.Revocations.RequireScope = true })
	srv := rs[0]
	ctx := context.Background()
	plain := mintFull(t, srv)
	watcher, err := srv.client.CreateToken(passwordCtx(), &keymintv1.CreateTokenRequest{Name: "watch", Scopes: []string{"keymint:watch"}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(ctx context.Context) error {
		s, err := srv.client.WatchRevocations(ctx, &keymintv1.WatchRevocationsRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	if err := open(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials: %v, want Unauthenticated", err)
	}
	bearer := func(tok string) context.Context {
		return metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
	}
	if err := open(bearer(plain.Secret)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a token without keymint:watch: %v, want PermissionDenied", err)
	}
	wctx, cancel := context.WithCancel(bearer(watcher.Secret))
	defer cancel()
	waitFor(t, "a keymint:watch token subscribes", func() bool { return open(wctx) == nil })
	v, err := client.NewValidator(ctx, client.ValidatorConfig{Target: srv.grpc, WatchToken: watcher.Secret})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "the validator with a watch token subscribes", v.Subscribed)
}

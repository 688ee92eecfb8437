package accounts

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
	"github.com/keymint/keymint/services/throttle"
)

// abuseFixture is a Service with a throttle and an audit log on SQLite.
type abuseFixture struct {
	svc    *Service
	store  store.Store
	hasher *Hasher
	admin  store.User
}

func newAbuseFixture(t *testing.T, account throttle.Limit) *abuseFixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lim, err := throttle.NewLocal(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	th, err := throttle.NewSignIn(throttle.SignInConfig{Limiter: lim, Account: account, IP: throttle.Limit{Burst: 1000, Interval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHasher(t, HasherConfig{})
	svc, err := New(t.Context(), Config{Store: st, Hasher: h, Throttle: th, Audit: audit.New(audit.Config{Store: st})})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := svc.CreateUser(t.Context(), NewUser{Email: "boss@example.com", OrgName: "acme", Password: fixturePassword, Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	return &abuseFixture{svc: svc, store: st, hasher: h, admin: admin}
}

// fromPeer is a call's context as gRPC gives it: a peer address and its
// user agent.
func fromPeer(ip string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}})
	return metadata.NewIncomingContext(ctx, metadata.Pairs("user-agent", "test-agent/1"))
}

// Throttled guesses cost no hash and answer the same for a known and an
// unknown account; a success does not count.
func TestThrottleDecidesBeforeHashing(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, throttle.Limit{Burst: 3, Interval: time.Hour})
	ctx := fromPeer("198.51.100.7")
	for _, email := range []string{" BOSS@example.com", "nobody@example.com"} {
		// Successes before and between failures are free (the unknown
		// account has none).
		for range 3 {
			if email != "nobody@example.com" {
				if _, err := f.svc.Authenticate(ctx, email, fixturePassword); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.svc.Authenticate(ctx, email, "wrong password"); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("%s: failure = %v", email, err)
			}
		}
		hashes := f.hasher.Stats().Hashes
		for range 5 {
			_, err := f.svc.Authenticate(ctx, email, fixturePassword)
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Code != fault.ResourceExhausted || fe.Public != errThrottled.Public || fe.RetryAfter < 59*time.Minute {
				t.Fatalf("%s: throttled attempt = %v, want ResourceExhausted with an hour's retry hint", email, err)
			}
		}
		if n := f.hasher.Stats().Hashes - hashes; n != 0 {
			t.Fatalf("%s: throttled attempts ran %d hashes, want none", email, n)
		}
	}
	// Another address does not help against the account limit.
	if _, err := f.svc.Authenticate(fromPeer("203.0.113.9"), "boss@example.com", fixturePassword); fault.CodeOf(err) != fault.ResourceExhausted {
		t.Fatalf("from another address: %v", err)
	}
}

func TestAuditedSignIns(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, throttle.Limit{Burst: 100, Interval: time.Second})
	ctx := fromPeer("198.51.100.7")
	if _, err := f.svc.Authenticate(ctx, "boss@example.com", "wrong guess here"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := f.svc.Authenticate(ctx, "ghost@example.com", "wrong guess here"); err == nil {
		t.Fatal("unknown email accepted")
	}
	p, err := f.svc.Authenticate(ctx, "boss@example.com", fixturePassword)
	if err != nil {
		t.Fatal(err)
	}
	list, next, err := f.svc.ListAuditEvents(authn.WithPrincipal(ctx, p), 0, "")
	if err != nil || next != "" {
		t.Fatalf("ListAuditEvents: %v %q", err, next)
	}
	if len(list) != 2 || list[0].Action != store.AuditSignInSuccess || list[1].Action != store.AuditSignInFailure {
		t.Fatalf("events = %+v, want a success after a failure (the unknown email's is no tenant's)", list)
	}
	for _, e := range list {
		if e.OrgID != f.admin.OrgID || e.TargetID != f.admin.ID || e.ActorEmail != "boss@example.com" ||
			e.ClientIP != "198.51.100.7" || e.UserAgent != "test-agent/1" {
			t.Errorf("event %+v", e)
		}
	}
	orgless, err := f.store.ListAuditEvents(t.Context(), store.AuditFilter{OrgID: ""})
	if err != nil || len(orgless) != 1 || orgless[0].ActorEmail != "" || orgless[0].Action != store.AuditSignInFailure {
		t.Fatalf("org-less events = %+v, %v; want the unknown email's failure, naming nobody", orgless, err)
	}

	// Only admins list; paging works.
	for range 3 {
		if _, err := f.svc.Authenticate(ctx, "boss@example.com", fixturePassword); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := f.svc.ListAuditEvents(authn.WithPrincipal(ctx, p), 2, "")
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page: %d events, next %q, %v", len(page), next, err)
	}
	rest, next2, err := f.svc.ListAuditEvents(authn.WithPrincipal(ctx, p), 10, next)
	if err != nil || len(rest) != 3 || next2 != "" {
		t.Fatalf("second page: %d events, next %q, %v", len(rest), next2, err)
	}
	member := p
	member.Admin = false
	// A member lists only events about their own tokens caused by others
	// (leak reports): none of these sign-ins.
	if list, _, err := f.svc.ListAuditEvents(authn.WithPrincipal(ctx, member), 0, ""); err != nil || len(list) != 0 {
		t.Fatalf("non-admin: %d events, %v; want none", len(list), err)
	}
	if _, _, err := f.svc.ListAuditEvents(ctx, 0, ""); fault.CodeOf(err) != fault.Unauthenticated {
		t.Fatalf("anonymous: %v, want Unauthenticated", err)
	}
	if _, _, err := f.svc.ListAuditEvents(authn.WithPrincipal(ctx, p), 0, "!!"); fault.CodeOf(err) != fault.InvalidArgument {
		t.Fatalf("bad page token: %v", err)
	}
}

// A sign-in turned away for want of a hashing slot is Unavailable with a
// retry hint, and is no guess: it gives its throttle events back.
func TestBusyHasherRetryHint(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, throttle.Limit{Burst: 1, Interval: time.Hour})
	busy := newTestHasher(t, HasherConfig{MemoryBudget: 64 << 10, MaxWait: time.Millisecond})
	f.svc.hasher = busy
	if _, err := busy.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := fromPeer("198.51.100.7")
	for range 3 {
		_, err := f.svc.Authenticate(ctx, "boss@example.com", "wrong guess here")
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Code != fault.Unavailable || fe.RetryAfter != busyRetryAfter {
			t.Fatalf("busy hasher: %v, want Unavailable with a retry hint", err)
		}
	}
	busy.release(time.Now())
	if _, err := f.svc.Authenticate(ctx, "boss@example.com", fixturePassword); err != nil {
		t.Fatalf("after the flood, the one allowed attempt was spent: %v", err)
	}
	if s := busy.Stats(); s.Busy != 3 || s.Peak != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// A stored PHC string demanding absurd memory is refused before anything of
// that size is allocated.
func TestOutOfRangePHCAllocatesNothing(t *testing.T) {
	h := newTestHasher(t, HasherConfig{})
	phc := "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if ok, err := h.Verify(context.Background(), "password", phc); ok || !errors.Is(err, errPHC) {
			t.Fatalf("Verify = %v, %v; want errPHC", ok, err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("refusing a 4 GiB PHC string allocated %d bytes", n)
	}
	if h.Stats().Hashes != 0 {
		t.Fatal("an out-of-range PHC string was hashed")
	}
}

// An unknown email pays exactly one argon2 hash, as a wrong password does,
// so neither the answer nor the work tells them apart (counted, not timed).
//
// Mutation: services/accounts/accounts.go Authenticate skips the dummy
// verify for an unknown email, `if _, err := s.hasher.Verify(ctx, password,
// s.dummyHash); err != nil {` → `if false {`.
func TestUnknownEmailPaysOneHash(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, throttle.Limit{Burst: 100, Interval: time.Second})
	ctx := fromPeer("198.51.100.9")
	for _, c := range []struct{ name, email, password string }{
		{"wrong password", "boss@example.com", "wrong password"},
		{"unknown email", "nobody@example.com", "wrong password"},
		{"unknown email, the known account's password", "nobody@example.com", fixturePassword},
	} {
		before := f.hasher.Stats().Hashes
		if _, err := f.svc.Authenticate(ctx, c.email, c.password); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := f.hasher.Stats().Hashes - before; n != 1 {
			t.Fatalf("%s: %d hashes, want 1", c.name, n)
		}
	}
}

package throttle

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache/redistest"
)

// "A zero Burst is no limit" holds for the Redis limiter too: its Take
// allows every event without asking the Local or Redis (redis_rate, given
// a zero burst, would refuse every event).
//
// Mutation: services/throttle/limiter.go Redis.Take's `l.Burst <= 0` → `< 0`.
func TestRedisZeroBurstIsNoLimit(t *testing.T) {
	t.Parallel()
	r := newRedisLimiter(t, redistest.URL(t))
	ctx := context.Background()
	for _, lim := range []Limit{{}, {Burst: 0, Interval: time.Hour}} {
		for i := range 3 {
			if ok, retry, err := r.Take(ctx, "k", lim); !ok || retry != 0 || err != nil {
				t.Fatalf("%v: take %d = %v, %v, %v; want allowed", lim, i+1, ok, retry, err)
			}
		}
		if err := r.Give(ctx, "k", lim); err != nil {
			t.Fatal(err)
		}
	}
}

// A caller that gives up (its context cancelled) is no Redis outage: the
// take is refused with the context's error, the Local's event goes back,
// and Redis is still asked afterwards (a client hanging up must not put a
// replica on in-process counting).
//
// Mutations: services/throttle/limiter.go Redis.Take's `err == nil ||
// ctx.Err() == nil` (whether the outcome is recorded) with either side
// negated (a cancelled call booked as an outage; the first a gremlins
// survivor), and `case ctx.Err() != nil` negated (a cancelled take then
// allowed, its Local event kept).
func TestRedisCancelledTakeIsNoOutage(t *testing.T) {
	t.Parallel()
	r := newRedisLimiter(t, redistest.URL(t))
	lim := Limit{Burst: 1, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, _, err := r.Take(ctx, "k", lim)
	if ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("take with a cancelled context = %v, %v; want refused, context.Canceled", ok, err)
	}
	if r.skipping() {
		t.Fatal("a cancelled take put the limiter on in-process counting")
	}
	if ok, _, _ := r.fallback.Take(context.Background(), "k", lim); !ok {
		t.Fatal("the cancelled take kept its in-process event")
	}
}

// logRecords keeps what a limiter logs.
type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (h *logRecords) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.msgs
	h.msgs = nil
	return m
}

// An outage is logged once when it starts and once when Redis answers
// again, however many calls fail in between (one warning per sign-in would
// flood the log); a healthy Redis logs nothing.
//
// Mutations: services/throttle/limiter.go Redis.result's `err == nil`
// negated (a success booked as a failure), Redis.Take's `err == nil ||
// ctx.Err() == nil` → `ctx.Err() != nil` (a failure not recorded: no
// warning, no backoff) and `case ctx.Err() != nil` negated.
func TestRedisOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r := newRedisLimiter(t, rs.URL())
	logs := &logRecords{}
	r.log = slog.New(logs)
	// Each call asks Redis: no backoff to hide the failures.
	r.backoff = time.Nanosecond
	ctx := context.Background()
	lim := Limit{Burst: 5, Interval: time.Hour}
	for i := range 3 {
		if ok, _, err := r.Take(ctx, "up"+strconv.Itoa(i), lim); !ok || err != nil {
			t.Fatalf("take with Redis up = %v, %v", ok, err)
		}
	}
	if got := logs.take(); len(got) != 0 {
		t.Fatalf("a healthy Redis logged %q", got)
	}
	rs.Stop()
	for i := range 5 {
		time.Sleep(time.Microsecond) // past the backoff
		if ok, _, err := r.Take(ctx, "down"+strconv.Itoa(i), lim); !ok || err != nil {
			t.Fatalf("take with Redis down = %v, %v; want the Local's grant", ok, err)
		}
	}
	if got := logs.take(); len(got) != 1 || got[0] != "WARN throttle: redis unreachable; counting sign-in attempts in process until it answers" {
		t.Fatalf("5 failed calls logged %q, want one warning", got)
	}
	rs.Restart()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for i := 0; len(got) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("Redis never answered again")
		}
		time.Sleep(10 * time.Millisecond)
		r.Take(ctx, "back"+strconv.Itoa(i), lim)
		got = logs.take()
	}
	for i := range 3 {
		r.Take(ctx, "again"+strconv.Itoa(i), lim)
	}
	got = append(got, logs.take()...)
	if len(got) != 1 || got[0] != "INFO throttle: redis answers again; sign-in limits are shared across replicas" {
		t.Fatalf("Redis back logged %q, want one notice", got)
	}
}

// A zero Limit takes nothing, so it gives nothing back: Give under a zero
// Limit leaves alone an event the same key took under a real one, in the
// Local and, for the Redis limiter, in Redis (seen by another replica).
//
// Mutation: services/throttle/limiter.go Local.Give's `lim.Burst <= 0` →
// `< 0` (the zero Limit's Interval given back). Redis.Give's same mutant
// is equivalent (README, Survivors): redis_rate stores nothing for a zero
// burst, so only a round trip is wasted; the Redis half holds that.
func TestZeroLimitGivesNothingBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lim, zero := Limit{Burst: 1, Interval: time.Hour}, Limit{Burst: 0, Interval: time.Hour}
	local, _ := newLocal(t)
	if ok, _, _ := local.Take(ctx, "k", lim); !ok {
		t.Fatal("first take refused")
	}
	if err := local.Give(ctx, "k", zero); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := local.Take(ctx, "k", lim); ok {
		t.Fatal("local: a Give under a zero Limit gave back an event taken under 1/1h")
	}
	url := redistest.URL(t)
	a, b := newRedisLimiter(t, url), newRedisLimiter(t, url)
	b.prefix = a.prefix
	if ok, _, err := a.Take(ctx, "k", lim); !ok || err != nil {
		t.Fatalf("first take on A = %v, %v", ok, err)
	}
	if err := a.Give(ctx, "k", zero); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.Take(ctx, "k", lim); ok || err != nil {
		t.Fatalf("take on B after A's zero-Limit Give = %v, %v; want refused", ok, err)
	}
}

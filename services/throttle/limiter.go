// Package throttle is keymint's rate limiting: per-key GCRA limits (the
// generic cell rate algorithm: Burst events at once, then one per Interval),
// kept in Redis when keymint has one, so every replica counts together, and
// in process otherwise or while Redis is unreachable. Three users share the
// Limiter: sign-in throttling (SignIn, signin.go: attempts per account and
// per client address, slowing password guessing), per-token rate limits
// (services/tokens' validation) and leak reports per address
// (tokens.DefaultLeakReportLimit). Usage quotas, which count down and never
// refill, are services/quota's, not a rate.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Limit lets Burst events happen at once and then one every Interval. A
// zero Burst is no limit.
type Limit struct {
	Burst    int
	Interval time.Duration
}

// ParseLimit parses "BURST/INTERVAL" such as "5/20s"; "off" (or "0") is no
// limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limit{}, nil
	}
	b, i, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("limit %q: want BURST/INTERVAL such as 5/20s, or off", s)
	}
	burst, err := strconv.Atoi(b)
	if err != nil || burst < 1 || burst > 1_000_000 {
		return Limit{}, fmt.Errorf("limit %q: burst must be a number from 1 to 1000000", s)
	}
	interval, err := time.ParseDuration(i)
	if err != nil || interval < time.Millisecond || interval > 24*time.Hour {
		return Limit{}, fmt.Errorf("limit %q: interval must be a duration from 1ms to 24h", s)
	}
	return Limit{Burst: burst, Interval: interval}, nil
}

// String is the ParseLimit form of l.
func (l Limit) String() string {
	if l.Burst == 0 {
		return "off"
	}
	return strconv.Itoa(l.Burst) + "/" + l.Interval.String()
}

// Limiter keeps GCRA state per key. Implementations are safe for concurrent
// use, and Take is atomic per key: concurrent takers never both get the last
// event.
type Limiter interface {
	// Take takes one event of key under l. It reports whether the event may
	// happen and, if not, how long until one may. A refused event takes
	// nothing, so hammering a limited key does not push it further away.
	Take(ctx context.Context, key string, l Limit) (ok bool, retryAfter time.Duration, err error)
	// Give returns one event Take took, as if it never happened.
	Give(ctx context.Context, key string, l Limit) error
}

// Local is an in-process Limiter over a bounded cache of keys.
type Local struct {
	keys *otter.Cache[string, time.Time]
	now  func() time.Time
}

// DefaultLocalKeys bounds how many keys a Local remembers. A key's state is
// a few dozen bytes; when more keys are live, the coldest are forgotten.
const DefaultLocalKeys = 100_000

// NewLocal returns an in-process Limiter remembering at most maxKeys keys
// (zero: DefaultLocalKeys). now is the clock (nil: time.Now).
func NewLocal(maxKeys int, now func() time.Time) (*Local, error) {
	if maxKeys <= 0 {
		maxKeys = DefaultLocalKeys
	}
	if now == nil {
		now = time.Now
	}
	l := &Local{now: now}
	c, err := otter.New(&otter.Options[string, time.Time]{
		MaximumSize: maxKeys,
		// A key is forgotten once its theoretical arrival time has passed:
		// from then on it is as fresh as an unknown key.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, time.Time]) time.Duration {
			return max(e.Value.Sub(l.now()), time.Millisecond)
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	l.keys = c
	return l, nil
}

// Take implements Limiter.
func (l *Local) Take(_ context.Context, key string, lim Limit) (bool, time.Duration, error) {
	if lim.Burst <= 0 {
		return true, 0, nil
	}
	var (
		ok    bool
		retry time.Duration
	)
	now := l.now()
	l.keys.Compute(key, func(tat time.Time, found bool) (time.Time, otter.ComputeOp) {
		if !found || tat.Before(now) {
			tat = now
		}
		next := tat.Add(lim.Interval)
		allowAt := next.Add(-time.Duration(lim.Burst) * lim.Interval)
		if allowAt.After(now) {
			retry = allowAt.Sub(now)
			return tat, otter.CancelOp
		}
		ok = true
		return next, otter.WriteOp
	})
	return ok, retry, nil
}

// Give implements Limiter.
func (l *Local) Give(_ context.Context, key string, lim Limit) error {
	if lim.Burst <= 0 {
		return nil
	}
	now := l.now()
	l.keys.ComputeIfPresent(key, func(tat time.Time) (time.Time, otter.ComputeOp) {
		tat = tat.Add(-lim.Interval)
		if !tat.After(now) {
			return tat, otter.InvalidateOp
		}
		return tat, otter.WriteOp
	})
	return nil
}

// Redis is a Limiter in Redis (go-redis/redis_rate: GCRA in a Lua script,
// atomic per key), so every replica counts the same attempts. Every event
// is also counted by a Local of this replica, which decides alone while
// Redis fails (skipped for Backoff at a time): an outage neither opens the
// gates nor refuses every sign-in. The Local is asked first and an event
// needs both to agree, so a replica never grants more than its own Local
// would, however Redis behaves: a Redis call that timed out may still have
// counted its event in Redis, and falling back to a fresh count there used
// to grant a second burst (TestConcurrentTakesAllCount on a loaded machine).
// The Local counts only this replica's events, so while Redis answers it is
// never the stricter of the two, except after Redis lost its state
// (restart, eviction): then it under-grants, never over-grants.
type Redis struct {
	rl       *redis_rate.Limiter
	fallback *Local
	prefix   string
	timeout  time.Duration
	backoff  time.Duration
	log      *slog.Logger
	// skipUntil is the unix-nano time until which Redis is not asked.
	skipUntil atomic.Int64
	// down remembers that the last call failed, to log the outage once.
	down atomic.Bool
}

// RedisConfig configures a Redis limiter.
type RedisConfig struct {
	// Client must bound calls by their context (ContextTimeoutEnabled, as
	// rediscache.NewClient sets it), or Timeout cannot hold.
	Client redis.UniversalClient
	// Prefix namespaces the keys (redis_rate adds "rate:" in front).
	Prefix string
	// Timeout bounds each Redis call. Zero means 200 ms.
	Timeout time.Duration
	// Backoff is how long Redis is skipped after a failure. Zero means 1 s.
	Backoff time.Duration
	// Fallback counts this replica's events alongside Redis and decides
	// alone while Redis is skipped. Required; not shared with another
	// Limiter that uses the same keys.
	Fallback *Local
	Logger   *slog.Logger
}

// NewRedis returns a Redis limiter.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil || cfg.Fallback == nil {
		return nil, errors.New("throttle: RedisConfig needs Client and Fallback")
	}
	r := &Redis{
		rl:       redis_rate.NewLimiter(cfg.Client),
		fallback: cfg.Fallback,
		prefix:   cfg.Prefix,
		timeout:  cfg.Timeout,
		backoff:  cfg.Backoff,
		log:      cfg.Logger,
	}
	if r.prefix == "" {
		r.prefix = "keymint:throttle:"
	}
	if r.timeout <= 0 {
		r.timeout = 200 * time.Millisecond
	}
	if r.backoff <= 0 {
		r.backoff = time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

func redisLimit(l Limit) redis_rate.Limit {
	return redis_rate.Limit{Rate: 1, Period: l.Interval, Burst: l.Burst}
}

// skipping reports whether Redis failed within the last backoff.
func (r *Redis) skipping() bool { return time.Now().UnixNano() < r.skipUntil.Load() }

// result records the outcome of a Redis call for the backoff and the log.
func (r *Redis) result(err error) {
	if err == nil {
		if r.down.Swap(false) {
			r.log.Info("throttle: redis answers again; sign-in limits are shared across replicas")
		}
		return
	}
	r.skipUntil.Store(time.Now().Add(r.backoff).UnixNano())
	if !r.down.Swap(true) {
		r.log.Warn("throttle: redis unreachable; counting sign-in attempts in process until it answers", "err", err.Error())
	}
}

// Take implements Limiter. The event is taken from the Local first (a
// refusal there costs no round trip), then from Redis; Redis refusing
// gives the Local's back, Redis failing leaves the Local's decision.
func (r *Redis) Take(ctx context.Context, key string, l Limit) (bool, time.Duration, error) {
	if l.Burst <= 0 {
		return true, 0, nil
	}
	ok, retry, err := r.fallback.Take(ctx, key, l)
	if !ok || err != nil || r.skipping() {
		return ok, retry, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	res, err := r.rl.Allow(cctx, r.prefix+key, redisLimit(l))
	cancel()
	if err == nil || ctx.Err() == nil {
		r.result(err)
	}
	switch {
	case err == nil && res.Allowed > 0:
		return true, 0, nil
	case err == nil:
		_ = r.fallback.Give(ctx, key, l)
		return false, max(res.RetryAfter, 0), nil
	case ctx.Err() != nil:
		_ = r.fallback.Give(ctx, key, l)
		return false, 0, ctx.Err()
	}
	// Redis failed: the Local's grant stands.
	return true, 0, nil
}

// Give implements Limiter: the event goes back to the Local and to Redis
// (where, for an event taken while Redis was skipped, it is a no-op, or
// gives back one that was never taken there: harmless).
func (r *Redis) Give(ctx context.Context, key string, l Limit) error {
	if l.Burst <= 0 {
		return nil
	}
	_ = r.fallback.Give(ctx, key, l)
	if r.skipping() {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	_, err := r.rl.AllowN(cctx, r.prefix+key, redisLimit(l), -1)
	cancel()
	r.result(err)
	return nil
}

// Package quota counts down the uses of usage-limited tokens, exactly,
// across replicas: in the store alone (one atomic UPDATE per use), or, with
// Redis, in Redis from blocks of uses leased out of the store.
//
// The consistency scheme with Redis. The store's remaining_uses counts the
// uses not yet handed to Redis; Redis counts the uses leased to it and not
// yet used. The two sets are disjoint, and a use moves from the store to
// Redis (TakeTokenUses commits) before Redis can hand it out, so:
//
//   - no use is ever granted twice: Redis decrements atomically (a Lua
//     script), and the store's take is one row-locked transaction;
//   - Redis losing its data (a restart without persistence, an eviction, a
//     key idle past KeyTTL) loses at most the uses leased to it and unused,
//     never grants extra: a missing counter is refilled from the store,
//     which already subtracted every lease;
//   - while Redis is unreachable, uses are taken from the store one by one:
//     also exact, since the leased ones stay in Redis, unreachable;
//   - leases are small (an eighth of what is left, 1 to 1000 uses), so a
//     loss is bounded and a low count is not all leased at once.
//
// One replica at a time refills a counter (a lock key in Redis); callers
// finding it empty while a refill runs wait for it briefly, then take from
// the store. A counter whose store row is spent is marked exhausted in
// Redis, so a spent token costs no store call.
package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store is what a Counter needs of store.Store.
type Store interface {
	// TakeTokenUses takes up to n uses from token id's counter atomically.
	TakeTokenUses(ctx context.Context, id string, n int64) (taken, left int64, err error)
}

// Defaults of Config's zero values.
const (
	DefaultPrefix  = "keymint:uses:"
	DefaultTimeout = 50 * time.Millisecond
	DefaultBackoff = time.Second
	DefaultKeyTTL  = 30 * 24 * time.Hour
	// lockTTL bounds how long a dead refiller holds up a counter.
	lockTTL = 2 * time.Second
	// maxWait bounds how long a caller waits for another's refill before
	// taking a use from the store itself: past lockTTL, so a dead
	// refiller's lock has expired and a waiter takes over the refill.
	maxWait = 3 * time.Second
	// maxLease bounds a lease: what a Redis data loss can cost.
	maxLease = 1000
)

// Config configures a Counter.
type Config struct {
	Store Store
	// Client is Redis; nil counts in the store alone.
	Client redis.UniversalClient
	Prefix string
	// Timeout bounds each Redis call (it is on the validation path).
	Timeout time.Duration
	// Backoff is how long Redis is skipped after a failure.
	Backoff time.Duration
	// KeyTTL is how long an idle counter stays in Redis; its unused lease is
	// lost after that.
	KeyTTL time.Duration
	Logger *slog.Logger
}

// Counter takes uses of usage-limited tokens. Safe for concurrent use.
type Counter struct {
	store   Store
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	backoff time.Duration
	keyTTL  time.Duration
	log     *slog.Logger
	// skipUntil is the unix-nano time until which Redis is not asked.
	skipUntil atomic.Int64
	down      atomic.Bool
}

// New returns a Counter.
func New(cfg Config) (*Counter, error) {
	if cfg.Store == nil {
		return nil, errors.New("quota: Config.Store is required")
	}
	c := &Counter{store: cfg.Store, client: cfg.Client, prefix: cfg.Prefix, timeout: cfg.Timeout,
		backoff: cfg.Backoff, keyTTL: cfg.KeyTTL, log: cfg.Logger}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.keyTTL <= 0 {
		c.keyTTL = DefaultKeyTTL
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Take takes one use of the counter of pool (a token id). ok is false when
// none is left; left is how many remain after this one (including leased
// ones). hint is the last known count, for sizing the first lease. An error
// means the answer is unknown: refuse the use.
func (c *Counter) Take(ctx context.Context, pool string, hint int64) (ok bool, left int64, err error) {
	if c.client != nil && !c.skipping() {
		ok, left, err := c.takeRedis(ctx, pool, hint)
		if err == nil {
			return ok, left, nil
		}
		if ctx.Err() != nil {
			return false, 0, ctx.Err()
		}
		c.failed(err)
		// Redis failed: the store's own uses are disjoint from the leased
		// ones, so taking from it is exact.
	}
	return c.takeStore(ctx, pool)
}

func (c *Counter) takeStore(ctx context.Context, pool string) (bool, int64, error) {
	taken, left, err := c.store.TakeTokenUses(ctx, pool, 1)
	if err != nil {
		return false, 0, fmt.Errorf("take a use of %s: %w", pool, err)
	}
	return taken == 1, left, nil
}

// Script results: the first element of the reply.
const (
	resExhausted = 0
	resGranted   = 1
	resRefill    = 2
	resWait      = 3
)

// consumeScript takes a leased use, or makes the caller the refiller (a lock
// with its owner token), or tells it to wait for another refiller, or says
// the counter is spent. The reply's second element is the uses left (for
// resGranted) or the store's count at the last refill, -1 if unknown (for
// resRefill).
var consumeScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > 0 then
  n = redis.call('HINCRBY', KEYS[1], 'n', -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {1, n + tonumber(redis.call('HGET', KEYS[1], 's') or '0')}
end
if redis.call('HGET', KEYS[1], 'x') == '1' then
  return {0, 0}
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {2, tonumber(redis.call('HGET', KEYS[1], 's') or '-1')}
end
return {3, 0}
`)

// refillScript records a refiller's store take (ARGV[3] uses taken, ARGV[4]
// left in the store): the refiller keeps one use and leases the rest; with
// nothing taken it marks the counter spent, unless a concurrent refiller
// (after a lock timeout) leased uses meanwhile.
var refillScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
local taken = tonumber(ARGV[3])
local s = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 's', s)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if taken > 0 then
  return {1, redis.call('HINCRBY', KEYS[1], 'n', taken - 1) + s}
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > 0 then
  return {1, redis.call('HINCRBY', KEYS[1], 'n', -1) + s}
end
redis.call('HSET', KEYS[1], 'x', '1')
return {0, 0}
`)

// releaseScript drops a refill lock if ARGV[1] still owns it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// keys are the counter hash and its refill lock, in one hash slot.
func (c *Counter) keys(pool string) []string {
	k := c.prefix + "{" + pool + "}"
	return []string{k, k + ":lock"}
}

func (c *Counter) takeRedis(ctx context.Context, pool string, hint int64) (bool, int64, error) {
	keys := c.keys(pool)
	owner := newOwner()
	ttl, lock := c.keyTTL.Milliseconds(), lockTTL.Milliseconds()
	deadline := time.Now().Add(maxWait)
	pause := 500 * time.Microsecond
	for {
		res, n, err := c.run(ctx, consumeScript, keys, ttl, owner, lock)
		if err != nil {
			return false, 0, err
		}
		switch res {
		case resGranted:
			return true, n, nil
		case resExhausted:
			return false, 0, nil
		case resRefill:
			if n < 0 {
				n = hint
			}
			return c.refill(ctx, pool, keys, owner, lease(n))
		}
		// Another replica is refilling: wait for it, but not for long.
		if time.Now().After(deadline) {
			return c.takeStore(ctx, pool)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, 0, ctx.Err()
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// lease is how many uses to move from the store to Redis when the store
// had about left: an eighth, 1 to maxLease.
func lease(left int64) int64 {
	return min(max(left/8, 1), maxLease)
}

// refill leases uses from the store into Redis and keeps one for this call.
func (c *Counter) refill(ctx context.Context, pool string, keys []string, owner string, n int64) (bool, int64, error) {
	taken, left, err := c.store.TakeTokenUses(ctx, pool, n)
	if err != nil {
		// Release the lock for the next caller; the store error is the answer.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		_ = releaseScript.Run(rctx, c.client, keys[1:], owner).Err()
		cancel()
		return false, 0, fmt.Errorf("lease %d uses of %s: %w", n, pool, err)
	}
	res, rest, err := c.run(context.WithoutCancel(ctx), refillScript, keys, c.keyTTL.Milliseconds(), owner, taken, left)
	if err != nil {
		// The uses are out of the store and not in Redis: this call keeps
		// one, the rest are lost (never granted twice).
		c.failed(err)
		if taken > 0 {
			c.log.WarnContext(ctx, "quota: redis failed after a lease; its unused uses are lost", "token_id", pool, "lost", taken-1)
			return true, left, nil
		}
		return false, 0, nil
	}
	return res == resGranted, rest, nil
}

// run runs a script bounded by the timeout and returns its two integers.
func (c *Counter) run(ctx context.Context, s *redis.Script, keys []string, args ...any) (int64, int64, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := s.Run(cctx, c.client, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("quota: script answered %d values", len(v))
	}
	c.ok()
	return v[0], v[1], nil
}

// Leased returns, for each pool Redis holds a counter of, the uses leased
// to Redis and unused: what a display adds to the store's count. Best
// effort: without Redis, or when it fails, it returns what it has.
func (c *Counter) Leased(ctx context.Context, pools []string) map[string]int64 {
	out := map[string]int64{}
	if c.client == nil || len(pools) == 0 || c.skipping() {
		return out
	}
	cctx, cancel := context.WithTimeout(ctx, 4*c.timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(pools))
	_, err := c.client.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, pool := range pools {
			cmds[i] = p.HGet(cctx, c.keys(pool)[0], "n")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return out
	}
	for i, cmd := range cmds {
		if n, err := cmd.Int64(); err == nil && n > 0 {
			out[pools[i]] = n
		}
	}
	return out
}

func (c *Counter) skipping() bool { return time.Now().UnixNano() < c.skipUntil.Load() }

func (c *Counter) failed(err error) {
	c.skipUntil.Store(time.Now().Add(c.backoff).UnixNano())
	if !c.down.Swap(true) {
		c.log.Warn("quota: redis unreachable; counting token uses in the store until it answers", "err", err.Error())
	}
}

func (c *Counter) ok() {
	if c.down.Swap(false) {
		c.log.Info("quota: redis answers again; token uses are counted there")
	}
}

// newOwner names one refill attempt, so only its owner releases the lock.
func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

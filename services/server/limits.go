package server

import (
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/quota"
	"github.com/keymint/keymint/services/throttle"
)

// tokenLimits builds what per-token usage and rate limits count with: with
// Redis, counters every replica shares (leased usage counters, GCRA rate
// limits via redis_rate, each falling back to the store or the process
// while Redis fails); without, the store (uses) and the process (rates).
// Both sit on the validation path, so their Redis calls get the cache's
// timeout.
func tokenLimits(st quota.Store, client redis.UniversalClient, redisTimeout time.Duration, log *slog.Logger) (*quota.Counter, throttle.Limiter, error) {
	uses, err := quota.New(quota.Config{Store: st, Client: client, Timeout: redisTimeout, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	local, err := throttle.NewLocal(0, nil)
	if err != nil {
		return nil, nil, err
	}
	if client == nil {
		return uses, local, nil
	}
	rates, err := throttle.NewRedis(throttle.RedisConfig{
		Client:   client,
		Prefix:   "keymint:ratelimit:",
		Timeout:  redisTimeout,
		Fallback: local,
		Logger:   log,
	})
	if err != nil {
		return nil, nil, err
	}
	return uses, rates, nil
}

package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/cache/rediscache"
)

// CacheConfig is the validation cache's part of Config.
type CacheConfig struct {
	RedisURL     string        `name:"redis-url" env:"KEYMINT_REDIS_URL" help:"Redis for the shared validation cache and revocation across replicas: redis://, rediss://, redis+sentinel://, redis+cluster://; empty: L1 only."`
	RedisTimeout time.Duration `name:"redis-timeout" env:"KEYMINT_REDIS_TIMEOUT" default:"50ms" help:"Bound on each Redis call on the validation path."`
	// RevocationTimeout bounds a revocation's Redis calls (zero: 10×
	// RedisTimeout, at least rediscache.DefaultRevocationTimeout).
	RevocationTimeout time.Duration `name:"redis-revocation-timeout" env:"KEYMINT_REDIS_REVOCATION_TIMEOUT" default:"0s" help:"Bound on each Redis call of a revocation (tombstone, publish), made after the API call returned; 0: 10× redis-timeout, at least 500ms."`
	L1Size            uint          `name:"cache-l1-size" env:"KEYMINT_CACHE_L1_SIZE" default:"${cache_l1_size}" help:"In-process validation cache size in tokens; 0 turns it off."`
	L1TTL             time.Duration `name:"cache-l1-ttl" env:"KEYMINT_CACHE_L1_TTL" default:"${cache_l1_ttl}" help:"How long a replica answers from its in-process cache; bounds revocation staleness without Redis."`
	NegativeTTL       time.Duration `name:"cache-negative-ttl" env:"KEYMINT_CACHE_NEGATIVE_TTL" default:"${cache_negative_ttl}" help:"How long an unknown token is remembered (in-process only)."`
	RedisTTL          time.Duration `name:"cache-redis-ttl" env:"KEYMINT_CACHE_REDIS_TTL" default:"${cache_redis_ttl}" help:"How long a token stays in Redis."`
}

// problems returns one line per invalid cache setting.
func (c *CacheConfig) problems() []string {
	out := positive(map[string]time.Duration{"redis-timeout": c.RedisTimeout, "cache-l1-ttl": c.L1TTL,
		"cache-negative-ttl": c.NegativeTTL, "cache-redis-ttl": c.RedisTTL})
	if c.RevocationTimeout < 0 || c.RevocationTimeout > 10*time.Minute {
		out = append(out, "redis-revocation-timeout: want 0 (10× redis-timeout) or a duration up to 10m")
	}
	if c.RedisTimeout > 5*time.Second {
		out = append(out, "redis-timeout: at most 5s (it bounds Redis calls on the validation path; tens of ms is usual)")
	}
	if c.RedisURL != "" {
		if _, err := rediscache.ParseURL(c.RedisURL, c.RedisTimeout); err != nil {
			out = append(out, "redis-url: "+err.Error())
		}
	}
	return out
}

// revocationTimeout is the bound on one revocation call to Redis.
func (c *CacheConfig) revocationTimeout() time.Duration {
	if c.RevocationTimeout > 0 {
		return c.RevocationTimeout
	}
	return max(10*c.RedisTimeout, rediscache.DefaultRevocationTimeout)
}

// redisLog sends go-redis's own log lines (dial failures, reconnects) to the
// debug level: keymint logs Redis going away and coming back itself, once
// each, and go-redis would otherwise print a line per failed dial to stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// redisLogOnce: go-redis's logger is process-wide; the first server's wins.
var redisLogOnce sync.Once

// validationCache is the cache with, when configured, its Redis L2.
type validationCache struct {
	*cache.Cache
	remote *rediscache.Remote
	client redis.UniversalClient
	// revClient carries revocation calls (tombstones, the revocation
	// channel) with a bound of their own: the validation client's read
	// timeout would cut them short.
	revClient redis.UniversalClient
	// signInClient carries the sign-in throttle's counts, bounded by
	// signInRedisTimeout. On the validation client its bound was silently
	// the validation path's (go-redis takes the earlier of the read timeout
	// and the context's deadline), so under load the count fell back to
	// each replica's own more often than intended; on the revocation
	// client a sign-in flood would share the revocation publisher's few
	// connections.
	signInClient redis.UniversalClient
}

// signInRedisTimeout bounds one sign-in throttle call to Redis: sign-in is
// not the validation path, so a few round trips more of patience.
func (c *CacheConfig) signInRedisTimeout() time.Duration {
	return max(4*c.RedisTimeout, 200*time.Millisecond)
}

// newValidationCache builds L1 and, with a Redis URL, the L2 and its
// invalidation channel. Redis being down at start is no error: validation
// falls back to the store until it answers.
func newValidationCache(ctx context.Context, c *CacheConfig, reg prometheus.Registerer, log *slog.Logger) (*validationCache, error) {
	vc := &validationCache{}
	cfg := cache.Config{
		L1Size:      int(c.L1Size),
		L1TTL:       c.L1TTL,
		NegativeTTL: c.NegativeTTL,
		RemoteTTL:   c.RedisTTL,
		Registerer:  reg,
		Logger:      log,
	}
	if c.L1Size == 0 {
		cfg.L1Size = -1 // the flag's 0 means off; cache.Config's 0 means default
	}
	if c.RedisURL != "" {
		redisLogOnce.Do(func() { redis.SetLogger(redisLog{log}) })
		client, err := rediscache.NewClient(c.RedisURL, c.RedisTimeout)
		if err != nil {
			return nil, fmt.Errorf("redis-url: %w", err)
		}
		revTimeout := c.revocationTimeout()
		revClient, err := rediscache.NewRevocationClient(c.RedisURL, revTimeout)
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("redis-url: %w", err)
		}
		signInClient, err := rediscache.NewClient(c.RedisURL, c.signInRedisTimeout())
		if err != nil {
			_ = client.Close()
			_ = revClient.Close()
			return nil, fmt.Errorf("redis-url: %w", err)
		}
		remote, err := rediscache.New(rediscache.Config{
			Client:            client,
			RevocationClient:  revClient,
			RevocationTimeout: revTimeout,
			Timeout:           c.RedisTimeout,
			// Longer than any entry written before a failed invalidation lives.
			RetryFor: c.RedisTTL + cache.DefaultLoadTimeout,
			Logger:   log,
		})
		if err != nil {
			_ = client.Close()
			_ = revClient.Close()
			_ = signInClient.Close()
			return nil, err
		}
		vc.client, vc.revClient, vc.signInClient, vc.remote, cfg.Remote = client, revClient, signInClient, remote, remote
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := client.Ping(pctx).Err(); err != nil {
			log.Warn("redis not reachable at start; validating from the store until it is", "err", err.Error())
		}
		cancel()
	}
	var err error
	if vc.Cache, err = cache.New(cfg); err != nil {
		vc.closeClients()
		return nil, err
	}
	log.Info("validation cache", "l1_size", c.L1Size, "l1_ttl", c.L1TTL.String(), "redis", c.RedisURL != "")
	return vc, nil
}

// run retries failed Redis invalidations until ctx ends.
func (vc *validationCache) run(ctx context.Context) {
	if vc.remote != nil {
		vc.remote.Run(ctx)
	}
}

// close releases the cache and the Redis connections.
func (vc *validationCache) close() {
	vc.Cache.Close()
	vc.closeClients()
}

func (vc *validationCache) closeClients() {
	if vc.client != nil {
		_ = vc.client.Close()
	}
	if vc.revClient != nil {
		_ = vc.revClient.Close()
	}
	if vc.signInClient != nil {
		_ = vc.signInClient.Close()
	}
}

package main

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

// cacheConfig is the validation cache's part of Config.
type cacheConfig struct {
	RedisURL     string
	RedisTimeout time.Duration
	// RevocationTimeout bounds a revocation's Redis calls (zero: 10×
	// RedisTimeout, at least rediscache.DefaultRevocationTimeout).
	RevocationTimeout time.Duration
	L1Size            uint
	L1TTL             time.Duration
	NegativeTTL       time.Duration
	RedisTTL          time.Duration
}

// problems returns one line per invalid cache setting.
func (c *cacheConfig) problems(set map[string]bool) []string {
	var out []string
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"redis-timeout", c.RedisTimeout}, {"cache-l1-ttl", c.L1TTL}, {"cache-negative-ttl", c.NegativeTTL}, {"cache-redis-ttl", c.RedisTTL}} {
		if set[d.name] && d.v <= 0 {
			out = append(out, fmt.Sprintf("%s: want a positive duration such as 5s", d.name))
		}
	}
	if set["redis-revocation-timeout"] && (c.RevocationTimeout < 0 || c.RevocationTimeout > 10*time.Minute) {
		out = append(out, "redis-revocation-timeout: want 0 (10× redis-timeout) or a duration up to 10m")
	}
	if set["redis-timeout"] && c.RedisTimeout > 5*time.Second {
		out = append(out, "redis-timeout: at most 5s (it bounds Redis calls on the validation path; tens of ms is usual)")
	}
	if set["redis-url"] && c.RedisURL != "" {
		if _, err := rediscache.ParseURL(c.RedisURL, c.RedisTimeout); err != nil {
			out = append(out, "redis-url: "+err.Error())
		}
	}
	return out
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

// revocationTimeout is the bound on one revocation call to Redis.
func (c *cacheConfig) revocationTimeout() time.Duration {
	if c.RevocationTimeout > 0 {
		return c.RevocationTimeout
	}
	return max(10*c.RedisTimeout, rediscache.DefaultRevocationTimeout)
}

// validationCache is the cache with, when configured, its Redis L2.
type validationCache struct {
	*cache.Cache
	remote *rediscache.Remote
	client redis.UniversalClient
	// revClient carries revocation calls (tombstones, the revocation
	// channel) with a bound of their own: the validation client's read
	// timeout would cut them short.
	revClient redis.UniversalClient
}

// newValidationCache builds L1 and, with a Redis URL, the L2 and its
// invalidation channel. Redis being down at start is no error: validation
// falls back to the store until it answers.
func newValidationCache(ctx context.Context, c *cacheConfig, reg prometheus.Registerer, log *slog.Logger) (*validationCache, error) {
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
			return nil, err
		}
		vc.client, vc.revClient, vc.remote, cfg.Remote = client, revClient, remote, remote
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
}

// Package rediscache is the cache's shared L2 on Redis (go-redis
// UniversalClient: one node, Sentinel or Cluster) and its invalidation
// channel across replicas.
//
// Layout, under a prefix (default "keymint:"):
//
//	PREFIX t:{HEX}     an entry (cache.Entry's versioned encoding), PX TTL
//	PREFIX t:{HEX}:x   a tombstone left by an invalidation, PX TombstoneTTL
//	PREFIX revocations the pub/sub channel of the revocation log's fast path
//	                   (see RevocationFeed)
//
// HEX is the token's HMAC digest in hex, in a hash tag so an entry and its
// tombstone share a Cluster slot: a fill checks the tombstone and writes the
// entry in one script, atomically.
//
// Failure. Every call is bounded by Timeout. After a failed call the Remote
// skips Redis for Backoff, so a dead or hung Redis costs one timeout per
// Backoff rather than one per validation; the store answers meanwhile.
// Invalidations that fail are retried until no entry written before them can
// still be alive. Invalidations go through RevocationClient when set: its
// read timeout allows the longer bound revocations get.
package rediscache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keymint/keymint/services/batch"
	"github.com/keymint/keymint/services/cache"
)

// Defaults of Config's zero values.
const (
	DefaultPrefix       = "keymint:"
	DefaultTimeout      = 50 * time.Millisecond
	DefaultBackoff      = time.Second
	DefaultTombstoneTTL = time.Minute
)

// ErrSkipped means Redis was not asked: it failed within the last Backoff.
var ErrSkipped = errors.New("redis skipped after a recent failure")

// Config configures a Remote.
type Config struct {
	Client redis.UniversalClient
	// RevocationClient, when set, carries invalidations (tombstones and
	// deletions) with RevocationTimeout per call (see NewRevocationClient).
	RevocationClient  redis.UniversalClient
	RevocationTimeout time.Duration
	// Prefix namespaces keys and the channel, so replicas of one keymint
	// share them and other applications (or tests) on the Redis do not.
	Prefix string
	// Timeout bounds each Redis call on the validation path.
	Timeout time.Duration
	// Backoff is how long Redis is skipped after a failure.
	Backoff time.Duration
	// TombstoneTTL is how long an invalidated key refuses live fills. It
	// must exceed the cache's LoadTimeout: a load that read the store before
	// the invalidation may try to fill until then.
	TombstoneTTL time.Duration
	// RetryFor is how long a failed invalidation is retried: at least the
	// entries' RemoteTTL (after that no entry written before it survives).
	// Zero means 10 minutes.
	RetryFor time.Duration
	// BatchSize bounds how many validations' reads one pipeline carries:
	// while a read is in flight, the reads that arrive wait and go in the
	// next pipeline together (no timer: a lone read goes at once).
	// BatchQueue bounds how many wait; beyond it a read goes on its own.
	// Zero takes batch's defaults (batch.DefaultMaxBatch, DefaultMaxQueued).
	BatchSize  int
	BatchQueue int
	Logger     *slog.Logger
}

// Remote implements cache.Remote on Redis.
type Remote struct {
	client    redis.UniversalClient
	revClient redis.UniversalClient
	revTime   time.Duration
	prefix    string
	timeout   time.Duration
	backoff   time.Duration
	tombstone time.Duration
	retryFor  time.Duration
	log       *slog.Logger
	// skipUntil is when Redis may be tried again, in UnixNano; 0 when healthy.
	skipUntil atomic.Int64
	// gets shares reads among concurrent Gets.
	gets *batch.Batcher[[]cache.Key, []string]
	// cluster: keys live in different slots, so no MGET.
	cluster bool

	mu      sync.Mutex
	pending map[cache.Key]time.Time // failed invalidations, by first failure
}

// New returns a Remote on cfg.Client.
func New(cfg Config) (*Remote, error) {
	if cfg.Client == nil {
		return nil, errors.New("rediscache: Config.Client is required")
	}
	r := &Remote{
		client:    cfg.Client,
		revClient: cfg.RevocationClient,
		revTime:   cfg.RevocationTimeout,
		prefix:    cfg.Prefix,
		timeout:   cfg.Timeout,
		backoff:   cfg.Backoff,
		tombstone: cfg.TombstoneTTL,
		retryFor:  cfg.RetryFor,
		log:       cfg.Logger,
		pending:   map[cache.Key]time.Time{},
	}
	if r.prefix == "" {
		r.prefix = DefaultPrefix
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.backoff <= 0 {
		r.backoff = DefaultBackoff
	}
	if r.tombstone <= 0 {
		r.tombstone = DefaultTombstoneTTL
	}
	if r.retryFor <= 0 {
		r.retryFor = 10 * time.Minute
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.revClient == nil {
		// Without a client of its own, a call cannot outlast the
		// connection's read timeout anyway.
		r.revClient, r.revTime = r.client, r.timeout
	}
	if r.revTime <= 0 {
		r.revTime = DefaultRevocationTimeout
	}
	_, r.cluster = r.client.(*redis.ClusterClient)
	r.gets = batch.New(batch.Config{MaxBatch: cfg.BatchSize, MaxQueued: cfg.BatchQueue, Timeout: r.timeout}, r.getBatch)
	return r, nil
}

func (r *Remote) entryKey(k cache.Key) string {
	// Built on the stack for the usual prefix: the string is the one
	// allocation.
	var buf [64 + 4 + 2*cache.KeySize]byte
	b := append(buf[:0], r.prefix...)
	b = append(b, "t:{"...)
	b = hex.AppendEncode(b, k[:])
	b = append(b, '}')
	return string(b)
}

func (r *Remote) tombstoneKey(k cache.Key) string { return r.entryKey(k) + ":x" }

// skipping reports whether Redis failed within the last Backoff.
func (r *Remote) skipping() bool {
	until := r.skipUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// result records a call's outcome for the backoff and returns err.
func (r *Remote) result(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		if r.skipUntil.Load() != 0 {
			r.skipUntil.Store(0)
			r.log.Info("redis reachable again")
		}
		return err
	}
	if r.skipUntil.Swap(time.Now().Add(r.backoff).UnixNano()) == 0 {
		r.log.Warn("redis failed; validating from the store meanwhile", "err", err.Error(), "retry_in", r.backoff.String())
	}
	return err
}

// Get returns the entry stored under the first of keys that has one.
// Concurrent Gets share pipelines (see Config.BatchSize): each pipeline is
// bounded by Timeout, and a Get waits at most for the one in flight and
// then its own.
func (r *Remote) Get(ctx context.Context, keys []cache.Key) (*cache.Entry, error) {
	if r.skipping() {
		return nil, ErrSkipped
	}
	vals, err := r.gets.Do(ctx, keys)
	if errors.Is(err, batch.ErrFull) {
		// BatchQueue callers wait already: this one reads on its own.
		vals, err = r.getOwn(ctx, keys)
	}
	if err != nil {
		return nil, fmt.Errorf("redis get: %w", err)
	}
	for _, v := range vals {
		e := new(cache.Entry)
		if err := e.UnmarshalString(v); err != nil {
			// Written by a later, incompatible keymint, or garbage: a miss.
			r.log.Debug("rediscache: undecodable entry", "err", err.Error())
			continue
		}
		if !contains(keys, e.Key) {
			// Stored under another key: never answer for the wrong token.
			continue
		}
		return e, nil
	}
	return nil, nil
}

func (r *Remote) getOwn(ctx context.Context, keys []cache.Key) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	vals, err := r.getBatch(ctx, [][]cache.Key{keys})
	if err != nil {
		return nil, err
	}
	return vals[0], nil
}

// getBatch reads the entries of every query's keys in one round trip: a
// GET alone; an MGET of them all on one node (a Sentinel's master
// included): one command for Redis to run, not one per key; in a Cluster,
// whose keys live in different slots, one GET per key in a pipeline.
// vals[i] holds query i's values found, in its keys' order.
func (r *Remote) getBatch(ctx context.Context, qs [][]cache.Key) (vals [][]string, err error) {
	vals = make([][]string, len(qs))
	if len(qs) == 1 && len(qs[0]) == 1 {
		v, err := r.client.Get(ctx, r.entryKey(qs[0][0])).Result()
		if err := r.result(err); err != nil {
			if errors.Is(err, redis.Nil) {
				return vals, nil
			}
			return nil, err
		}
		vals[0] = []string{v}
		return vals, nil
	}
	n := 0
	for _, keys := range qs {
		n += len(keys)
	}
	if !r.cluster {
		names := make([]string, 0, n)
		for _, keys := range qs {
			for _, k := range keys {
				names = append(names, r.entryKey(k))
			}
		}
		got, err := r.client.MGet(ctx, names...).Result()
		if err := r.result(err); err != nil {
			return nil, err
		}
		if len(got) != n {
			return nil, fmt.Errorf("mget: %d values for %d keys", len(got), n)
		}
		i := 0
		for q, keys := range qs {
			for range keys {
				if v, ok := got[i].(string); ok {
					vals[q] = append(vals[q], v)
				}
				i++
			}
		}
		return vals, nil
	}
	cmds := make([]*redis.StringCmd, 0, n)
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, keys := range qs {
			for _, k := range keys {
				cmds = append(cmds, p.Get(ctx, r.entryKey(k)))
			}
		}
		return nil
	})
	if err := r.result(err); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	i := 0
	for q, keys := range qs {
		for range keys {
			if v, err := cmds[i].Result(); err == nil {
				vals[q] = append(vals[q], v)
			}
			i++
		}
	}
	return vals, nil
}

func contains(keys []cache.Key, k cache.Key) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// fillScript stores an entry unless it is live and its key was invalidated
// recently (the tombstone exists): such a fill comes from a load that read
// the store before the invalidation.
var fillScript = redis.NewScript(`
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Fill stores e for ttl unless a tombstone refuses it.
func (r *Remote) Fill(ctx context.Context, e *cache.Entry, ttl time.Duration) error {
	if r.skipping() {
		return ErrSkipped
	}
	if ttl < time.Millisecond {
		return nil
	}
	v, err := e.MarshalBinary()
	if err != nil {
		return err
	}
	live := "0"
	if e.Live(time.Now()) {
		live = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err = fillScript.Run(ctx, r.client, []string{r.entryKey(e.Key), r.tombstoneKey(e.Key)},
		v, ttl.Milliseconds(), live).Err()
	if err := r.result(err); err != nil {
		return fmt.Errorf("redis fill: %w", err)
	}
	return nil
}

// Invalidate leaves a tombstone and deletes the entry (one transaction).
// It is tried even while Redis is being skipped; on failure it is queued
// and retried by Run. Other replicas hear of the revocation through the
// revocation log (RevocationFeed is its fast path), not from here.
func (r *Remote) Invalidate(ctx context.Context, key cache.Key) error {
	err := r.invalidate(ctx, key)
	if err != nil {
		r.mu.Lock()
		if _, ok := r.pending[key]; !ok {
			r.pending[key] = time.Now()
		}
		r.mu.Unlock()
	}
	return err
}

func (r *Remote) invalidate(ctx context.Context, key cache.Key) error {
	ctx, cancel := context.WithTimeout(ctx, r.revTime)
	defer cancel()
	_, err := r.revClient.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.tombstoneKey(key), "1", r.tombstone)
		p.Del(ctx, r.entryKey(key))
		return nil
	})
	if err := r.result(err); err != nil {
		return fmt.Errorf("redis invalidate: %w", err)
	}
	return nil
}

// Run retries failed invalidations until ctx ends.
func (r *Remote) Run(ctx context.Context) {
	retry := time.NewTicker(r.backoff)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			r.retryPending(ctx)
		}
	}
}

// retryPending retries failed invalidations, dropping those older than
// RetryFor: no entry written before them can be alive any more.
func (r *Remote) retryPending(ctx context.Context) {
	r.mu.Lock()
	keys := make(map[cache.Key]time.Time, len(r.pending))
	for k, t := range r.pending {
		keys[k] = t
	}
	r.mu.Unlock()
	for k, first := range keys {
		err := r.invalidate(ctx, k)
		if err != nil && time.Since(first) < r.retryFor {
			continue
		}
		if err != nil {
			r.log.Warn("rediscache: giving up on an invalidation", "err", err.Error())
		}
		r.mu.Lock()
		delete(r.pending, k)
		r.mu.Unlock()
	}
}

// PendingInvalidations is how many failed invalidations await a retry.
func (r *Remote) PendingInvalidations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

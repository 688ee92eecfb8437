// Package cache is keymint's validation cache: an in-process L1 (otter,
// bounded, short TTL), an optional shared L2 (Redis, see rediscache), then
// the store. Misses are coalesced per key; unknown tokens get a short
// negative entry in L1; store errors are never cached. It knows nothing of
// gRPC, tokens or secrets: keys are HMAC digests and values are Entries.
//
// Staleness. An invalidation drops the key from L1 here, and Remote deletes
// it from L2 and tells every other replica to drop it from theirs. A load
// that started before an invalidation never caches its (possibly stale)
// answer afterwards: every invalidation bumps a generation counter, and a
// load stores into L1 only if the counter has not moved since it began (see
// storeL1); L2 refuses such writes with a tombstone (see rediscache). Without
// an L2, or while it is unreachable, staleness is bounded by the L1 TTL.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Defaults of Config's zero values.
const (
	DefaultL1Size      = 100_000
	DefaultL1TTL       = 5 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultRemoteTTL   = 5 * time.Minute
	DefaultLoadTimeout = 5 * time.Second
)

// Remote is the shared second level: Redis in production (rediscache).
type Remote interface {
	// Get returns the entry stored under the first of keys that has one, or
	// nil on a miss.
	Get(ctx context.Context, keys []Key) (*Entry, error)
	// Fill stores e under e.Key for ttl. It must refuse to store a live
	// entry under a key invalidated within the last LoadTimeout (and then
	// some): the loader may have read the store before the invalidation.
	Fill(ctx context.Context, e *Entry, ttl time.Duration) error
	// Invalidate deletes key's entry, refuses live fills of key for a while,
	// and tells every replica to drop key from its L1.
	Invalidate(ctx context.Context, key Key) error
}

// Loader reads a token's entry from the store: a positive entry, a Negative
// one for a token the store does not know, or an error (never cached).
type Loader func(ctx context.Context) (*Entry, error)

// Config configures a Cache. Zero durations take the defaults above.
type Config struct {
	// L1Size bounds the in-process cache in entries; negative disables L1
	// (every validation then reaches L2 or the store). Zero is DefaultL1Size.
	L1Size int
	// L1TTL bounds how long a replica answers from L1 alone: without an L2
	// it is the staleness bound of a revocation.
	L1TTL time.Duration
	// NegativeTTL is how long an unknown token is remembered (in L1 only:
	// a flood of random tokens must not fill Redis).
	NegativeTTL time.Duration
	// Remote is the shared L2; nil for none.
	Remote    Remote
	RemoteTTL time.Duration
	// LoadTimeout bounds a miss (L2 read, store read, L2 fill) whatever the
	// callers' deadlines: the load runs detached, so one caller giving up
	// does not fail the others waiting for it.
	LoadTimeout time.Duration
	// Registerer receives the cache's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock TTLs are computed with (default time.Now).
	Now func() time.Time
}

// Cache is the validation cache. Safe for concurrent use.
type Cache struct {
	l1          *otter.Cache[Key, *Entry]
	remote      Remote
	l1TTL       time.Duration
	negativeTTL time.Duration
	remoteTTL   time.Duration
	loadTimeout time.Duration
	now         func() time.Time
	log         *slog.Logger
	flights     singleflight.Group
	// gen moves on every invalidation and flush: a load that sees it move
	// does not store its answer (see storeL1).
	gen atomic.Uint64
	m   metrics
}

// New returns a Cache.
func New(cfg Config) (*Cache, error) {
	c := &Cache{
		remote:      cfg.Remote,
		l1TTL:       orDefault(cfg.L1TTL, DefaultL1TTL),
		negativeTTL: orDefault(cfg.NegativeTTL, DefaultNegativeTTL),
		remoteTTL:   orDefault(cfg.RemoteTTL, DefaultRemoteTTL),
		loadTimeout: orDefault(cfg.LoadTimeout, DefaultLoadTimeout),
		now:         cfg.Now,
		log:         cfg.Logger,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.L1TTL < 0 || cfg.NegativeTTL < 0 || cfg.RemoteTTL < 0 || cfg.LoadTimeout < 0 {
		return nil, errors.New("cache: durations must not be negative")
	}
	size := cfg.L1Size
	if size == 0 {
		size = DefaultL1Size
	}
	if size > 0 {
		l1, err := otter.New(&otter.Options[Key, *Entry]{
			MaximumSize: size,
			ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[Key, *Entry]) time.Duration {
				return e.Value.ttl(c.now(), c.l1TTL, c.negativeTTL)
			}),
		})
		if err != nil {
			return nil, err
		}
		c.l1 = l1
	}
	var err error
	c.m, err = newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Close stops the L1's background goroutines.
func (c *Cache) Close() {
	if c.l1 != nil {
		c.l1.StopAllGoroutines()
	}
}

// Peek returns key's entry from L1, or nil. It is the hot path of a
// validation: no allocation, no lock, no I/O. A nil answer counts nothing;
// the Get that follows counts the miss.
func (c *Cache) Peek(key Key) *Entry {
	if c.l1 == nil {
		return nil
	}
	e, ok := c.l1.GetIfPresent(key)
	if !ok {
		return nil
	}
	c.m.l1Hit.Inc()
	return e
}

// Get returns the entry of a token that may be stored under any of keys
// (its digest under each pepper of the key ring, primary first): from L1,
// else from L2, else from load. Concurrent misses of one token share one
// load. An error means the answer is unknown: it is not cached.
func (c *Cache) Get(ctx context.Context, keys []Key, load Loader) (*Entry, error) {
	if len(keys) == 0 {
		return nil, errors.New("cache: no key")
	}
	for _, k := range keys {
		if e := c.Peek(k); e != nil {
			return e, nil
		}
	}
	c.m.l1Miss.Inc()
	ch := c.flights.DoChan(string(keys[0][:]), func() (any, error) {
		return c.fill(ctx, keys, load)
	})
	select {
	case r := <-ch:
		if r.Shared {
			c.m.coalesced.Inc()
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Entry), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill runs one coalesced miss: L2, then the store, then fills both levels.
func (c *Cache) fill(ctx context.Context, keys []Key, load Loader) (*Entry, error) {
	// A caller that missed L1 just before the previous load of this token
	// stored its answer would otherwise load it a second time.
	if c.l1 != nil {
		for _, k := range keys {
			if e, ok := c.l1.GetIfPresent(k); ok {
				return e, nil
			}
		}
	}
	gen := c.gen.Load()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
	defer cancel()
	if c.remote != nil {
		e, err := c.remote.Get(ctx, keys)
		switch {
		case err != nil:
			// Redis down or slow: the store answers instead.
			c.m.l2Error.Inc()
		case e != nil:
			c.m.l2Hit.Inc()
			c.storeL1(e, gen)
			return e, nil
		default:
			c.m.l2Miss.Inc()
		}
	}
	e, err := load(ctx)
	if err != nil {
		c.m.storeError.Inc()
		return nil, err
	}
	if e.Negative {
		c.m.storeMiss.Inc()
	} else {
		c.m.storeHit.Inc()
		if c.remote != nil && c.gen.Load() == gen {
			if err := c.remote.Fill(ctx, e, e.ttl(c.now(), c.remoteTTL, c.negativeTTL)); err != nil {
				c.log.DebugContext(ctx, "cache: L2 fill failed", "err", err.Error())
			}
		}
	}
	c.storeL1(e, gen)
	return e, nil
}

// storeL1 caches e unless an invalidation or flush happened since the load
// that produced it began (generation gen). Checking before the write is not
// enough: an invalidation may land between the check and the write, so the
// generation is checked again after it, and the write undone if it moved.
// Invalidations bump the generation before they delete, so one of the two
// always sees the other.
func (c *Cache) storeL1(e *Entry, gen uint64) {
	if c.l1 == nil || c.gen.Load() != gen {
		return
	}
	c.l1.Set(e.Key, e)
	if c.gen.Load() != gen {
		c.l1.Invalidate(e.Key)
	}
}

// Invalidate drops key here and, through L2, on every replica. Call it after
// the store has committed the change (a revocation): a load that begins
// afterwards reads the new state. An error means L2 could not be told (the
// Remote keeps retrying); L1 on other replicas then ages out within L1TTL.
func (c *Cache) Invalidate(ctx context.Context, key Key) error {
	c.drop(key)
	c.m.sent.Inc()
	if c.remote == nil {
		return nil
	}
	return c.remote.Invalidate(ctx, key)
}

// Drop removes key from L1: an invalidation received from another replica.
func (c *Cache) Drop(key Key) {
	c.drop(key)
	c.m.received.Inc()
}

func (c *Cache) drop(key Key) {
	c.gen.Add(1)
	// A caller arriving from now on must not share a load that began before.
	c.flights.Forget(string(key[:]))
	if c.l1 != nil {
		c.l1.Invalidate(key)
	}
}

// Flush empties L1: after a Redis reconnect, invalidations may have been
// lost while the subscription was down.
func (c *Cache) Flush() {
	c.gen.Add(1)
	if c.l1 != nil {
		c.l1.InvalidateAll()
	}
	c.m.flushes.Inc()
}

// metrics are the cache's Prometheus series.
type metrics struct {
	l1Hit, l1Miss, l2Hit, l2Miss, l2Error      prometheus.Counter
	storeHit, storeMiss, storeError, coalesced prometheus.Counter
	sent, received, flushes                    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymint_cache_lookups_total",
		Help: "Validation cache lookups by level (l1, l2, store) and result (hit, miss, error). A store miss is an unknown token.",
	}, []string{"level", "result"})
	coalesced := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_coalesced_total",
		Help: "Cache misses answered by another caller's load of the same token.",
	})
	sent := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_invalidations_sent_total",
		Help: "Invalidations this replica made (revocations).",
	})
	received := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_invalidations_received_total",
		Help: "Invalidations received from the Redis channel (including this replica's own).",
	})
	flushes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_l1_flushes_total",
		Help: "Times L1 was emptied because the invalidation channel was (re)subscribed.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{lookups, coalesced, sent, received, flushes} {
			if err := reg.Register(c); err != nil {
				return metrics{}, err
			}
		}
	}
	return metrics{
		l1Hit:      lookups.WithLabelValues("l1", "hit"),
		l1Miss:     lookups.WithLabelValues("l1", "miss"),
		l2Hit:      lookups.WithLabelValues("l2", "hit"),
		l2Miss:     lookups.WithLabelValues("l2", "miss"),
		l2Error:    lookups.WithLabelValues("l2", "error"),
		storeHit:   lookups.WithLabelValues("store", "hit"),
		storeMiss:  lookups.WithLabelValues("store", "miss"),
		storeError: lookups.WithLabelValues("store", "error"),
		coalesced:  coalesced,
		sent:       sent,
		received:   received,
		flushes:    flushes,
	}, nil
}

// Package cache is keymint's validation cache: an in-process L1 (otter,
// bounded, short TTL), an optional shared L2 (Redis, see rediscache), then
// the store. Store loads are coalesced per key (L2 reads are shared per
// Redis round trip instead); unknown tokens get a short
// negative entry in L1; store errors are never cached. It knows nothing of
// gRPC, tokens or secrets: keys are HMAC digests and values are Entries.
//
// Staleness. An invalidation drops the key from L1 here, and Remote deletes
// it from L2 and tells every other replica to drop it from theirs. A load
// that started before an invalidation never caches its (possibly stale)
// answer afterwards: every invalidation bumps a generation counter, and a
// load stores into L1 only if the counter has not moved since it began (see
// storeL1); L2 refuses such writes with a tombstone (see rediscache).
//
// Never a positive after a revocation. Revoke records a revoked token id
// (or a rotated one's new expiry) for RevokedTTL, in a bounded set; from
// then on no entry that contradicts it (read back from a stale L2, or from
// a load that read the store before the commit) is cached or returned as
// it is. Replicas learn revocations from the store's revocation log
// (tokens.Revocations); without that, staleness is bounded by the L1 TTL.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config's zero values.
const (
	DefaultL1Size      = 100_000
	DefaultL1TTL       = 5 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultRemoteTTL   = 5 * time.Minute
	DefaultLoadTimeout = 5 * time.Second
	// DefaultRevokedSize bounds the remembered revocations: 100,000 ids,
	// about 10 MiB, far more than any five minutes of revocations.
	DefaultRevokedSize = 100_000
)

// Remote is the shared second level: Redis in production (rediscache).
type Remote interface {
	// Get returns the entry stored under the first of keys that has one, or
	// nil on a miss. It bounds itself (rediscache: its Timeout per round
	// trip) and returns at ctx's end: each validation that missed L1 calls
	// it with its own context, concurrent ones for the same token too.
	Get(ctx context.Context, keys []Key) (*Entry, error)
	// Fill stores e under e.Key for ttl. It must refuse to store a live
	// entry under a key invalidated within the last LoadTimeout (and then
	// some): the loader may have read the store before the invalidation.
	Fill(ctx context.Context, e *Entry, ttl time.Duration) error
	// Invalidate deletes key's entry and refuses live fills of key for a
	// while. Other replicas learn of it from the revocation log.
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
	// LoadTimeout bounds a coalesced load (store read, L2 fill) whatever
	// the callers' deadlines: the load runs detached, so one caller giving
	// up does not fail the others waiting for it. Each caller's L2 read
	// before it is bounded by the Remote itself (rediscache's Timeout) and
	// by the caller's own context.
	LoadTimeout time.Duration
	// RevokedSize bounds the remembered revocations (see Revoke); zero is
	// DefaultRevokedSize. The oldest are forgotten first.
	RevokedSize int
	// RevokedTTL is how long a revocation is remembered: long enough that
	// no stale copy (an L2 entry whose deletion failed) outlives it. Zero
	// is RemoteTTL + LoadTimeout.
	RevokedTTL time.Duration
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
	flights     *flights
	// revoked maps a revoked token id to its mark (see Revoke).
	revoked *otter.Cache[string, revokedMark]
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
		flights:     newFlights(),
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
	revokedSize := cfg.RevokedSize
	if revokedSize <= 0 {
		revokedSize = DefaultRevokedSize
	}
	revoked, err := otter.New(&otter.Options[string, revokedMark]{
		MaximumSize:      revokedSize,
		ExpiryCalculator: otter.ExpiryWriting[string, revokedMark](revokedTTL(cfg.RevokedTTL, c.remoteTTL, c.loadTimeout)),
	})
	if err != nil {
		return nil, err
	}
	c.revoked = revoked
	c.m, err = newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// revokedTTL is how long Revoke remembers: set, or by default as long as
// a stale L2 copy can live (RemoteTTL) plus a load that read the store
// before the revocation (LoadTimeout).
func revokedTTL(set, remoteTTL, loadTimeout time.Duration) time.Duration {
	if set <= 0 {
		return remoteTTL + loadTimeout
	}
	return set
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Close stops the L1's background goroutines and the kept load goroutines.
func (c *Cache) Close() {
	c.flights.close()
	if c.l1 != nil {
		c.l1.StopAllGoroutines()
	}
	c.revoked.StopAllGoroutines()
}

// revokedMark is what Revoke remembers of a token.
type revokedMark struct {
	at time.Time
	// notAfter is a rotated token's new expiry; zero for a revocation.
	notAfter time.Time
}

// Revoke records that tokenID, cached under key, was revoked at at (a zero
// notAfter) or rotated so that it expires at notAfter, and drops key from
// L1. From then on, for RevokedTTL, an entry that says otherwise is neither
// cached nor returned unchanged: it comes back revoked (or expiring at
// notAfter). Replicas call it for every revocation log row they apply.
func (c *Cache) Revoke(key Key, tokenID string, at, notAfter time.Time) {
	c.revoked.Set(tokenID, revokedMark{at: at, notAfter: notAfter})
	c.drop(key)
	c.m.received.Inc()
}

// correct returns e, or a corrected copy and true when a revocation
// recorded by Revoke contradicts it.
func (c *Cache) correct(e *Entry) (*Entry, bool) {
	if e.Negative || e.TokenID == "" || c.revoked.EstimatedSize() == 0 {
		return e, false
	}
	m, ok := c.revoked.GetIfPresent(e.TokenID)
	if !ok {
		return e, false
	}
	switch {
	case m.notAfter.IsZero() && e.RevokedAt.IsZero():
		f := *e
		f.RevokedAt = m.at
		return &f, true
	case !m.notAfter.IsZero() && (e.ExpiresAt.IsZero() || e.ExpiresAt.After(m.notAfter)):
		f := *e
		f.ExpiresAt = m.notAfter
		return &f, true
	}
	return e, false
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
	if c.remote != nil {
		e, err := c.readL2(ctx, keys)
		if e != nil {
			return e, nil
		}
		if err != nil && ctx.Err() != nil {
			// The caller left during the read: nothing to load for it.
			return nil, ctx.Err()
		}
		// A miss, a stale copy or a failing Redis: the store answers.
	}
	f, shared := c.flights.join(keys[0], func() (*Entry, error) {
		return c.fill(ctx, keys, load)
	})
	if shared {
		c.m.coalesced.Inc()
	}
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return f.e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readL2 is a miss's L2 read, made by its caller rather than by a
// coalesced load: concurrent misses' reads share Redis round trips
// already (rediscache batches them), and an L2 hit then takes no hand-off
// to a load goroutine and back. A nil entry without an error is a miss or
// a stale copy; the store answers either.
func (c *Cache) readL2(ctx context.Context, keys []Key) (*Entry, error) {
	gen := c.gen.Load()
	e, err := c.remote.Get(ctx, keys)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			// Redis down or slow: the store answers instead.
			c.m.l2Error.Inc()
		}
		return nil, err
	case e == nil:
		c.m.l2Miss.Inc()
		return nil, nil
	}
	c.m.l2Hit.Inc()
	if _, stale := c.correct(e); stale {
		// A copy whose deletion failed: answer from the store.
		c.m.l2Stale.Inc()
		return nil, nil
	}
	c.storeL1(e, gen)
	return e, nil
}

// fill runs one coalesced miss, after its callers' L2 reads missed: the
// store, then fills both levels.
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
	e, err := load(ctx)
	if err != nil {
		c.m.storeError.Inc()
		return nil, err
	}
	if f, stale := c.correct(e); stale {
		// Read before the revocation committed, answered after it was
		// applied here: never a positive after a refusal.
		return f, nil
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
	if _, stale := c.correct(e); stale {
		return
	}
	c.l1.Set(e.Key, e)
	if c.gen.Load() != gen {
		c.l1.Invalidate(e.Key)
	}
}

// Invalidate drops key here and from L2. Call it after the store has
// committed the change (a revocation): a load that begins afterwards reads
// the new state. L2 goes first and L1 is dropped again after it: a load
// between the first drop and the L2 deletion may have re-read the old L2
// entry, and its L1 copy goes with the second drop. An error means L2 could
// not be told (the Remote keeps retrying); Revoke's mark covers the gap.
// Other replicas learn of it from the revocation log.
func (c *Cache) Invalidate(ctx context.Context, key Key) error {
	c.drop(key)
	c.m.sent.Inc()
	if c.remote == nil {
		return nil
	}
	err := c.remote.Invalidate(ctx, key)
	c.drop(key)
	return err
}

// Drop removes key from L1.
func (c *Cache) Drop(key Key) {
	c.drop(key)
	c.m.received.Inc()
}

func (c *Cache) drop(key Key) {
	c.gen.Add(1)
	// A caller arriving from now on must not share a load that began before.
	c.flights.forget(key)
	if c.l1 != nil {
		c.l1.Invalidate(key)
	}
}

// Flush empties L1: when revocations may have been missed (the revocation
// log was pruned past what this replica applied).
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
	l2Stale                                    prometheus.Counter
	storeHit, storeMiss, storeError, coalesced prometheus.Counter
	sent, received, flushes                    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymint_cache_lookups_total",
		Help: "Validation cache lookups by level (l1, l2, store) and result (hit, miss, error, stale). A store miss is an unknown token; an l2 stale is a copy a revocation contradicts.",
	}, []string{"level", "result"})
	coalesced := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_coalesced_total",
		Help: "Cache misses (L1 and L2) answered by another caller's store load of the same token.",
	})
	sent := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_invalidations_sent_total",
		Help: "Invalidations this replica made (revocations).",
	})
	received := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_invalidations_received_total",
		Help: "Revocations applied to L1 (from the revocation log or its Redis fast path, this replica's own included).",
	})
	flushes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keymint_cache_l1_flushes_total",
		Help: "Times L1 was emptied because revocations may have been missed.",
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
		l2Stale:    lookups.WithLabelValues("l2", "stale"),
		storeHit:   lookups.WithLabelValues("store", "hit"),
		storeMiss:  lookups.WithLabelValues("store", "miss"),
		storeError: lookups.WithLabelValues("store", "error"),
		coalesced:  coalesced,
		sent:       sent,
		received:   received,
		flushes:    flushes,
	}, nil
}

package tokens

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/store"
)

// Defaults of RevocationsConfig's zero values. The README's configuration
// table lists the ones that are flags.
const (
	// DefaultRevocationPoll is how often a replica reads the store's log
	// for rows it has not applied: one indexed query (seq > last). It is
	// the propagation bound without Redis, or while Redis loses messages.
	DefaultRevocationPoll = 250 * time.Millisecond
	// DefaultWatchHeartbeat is how often WatchRevocations streams send the
	// head sequence when nothing else happens.
	DefaultWatchHeartbeat = 500 * time.Millisecond
	// DefaultMaxWatchStreams bounds WatchRevocations streams per replica.
	DefaultMaxWatchStreams = 10_000
	// DefaultMaxWatchStreamsPerClient bounds them per client address.
	DefaultMaxWatchStreamsPerClient = 64
	// DefaultWatchQueue bounds the events waiting for one slow stream; a
	// stream further behind is cut off (it resumes with since).
	DefaultWatchQueue = 4096
	// DefaultWatchBacklog bounds the log rows a resuming stream is sent
	// from the store; further behind, it is told to resync.
	DefaultWatchBacklog = 10_000
	// DefaultPublishQueue bounds the revocations this replica wrote that
	// wait for their Redis side (tombstone, publish). A revocation that
	// finds it full is not published: the other replicas read it from the
	// store's log within Poll anyway.
	DefaultPublishQueue = 1024
	// revocationPage is how many log rows one catch-up query reads.
	revocationPage = 500
	// pruneEvery is how often old log rows are deleted.
	pruneEvery = 10 * time.Minute
)

// Revocation is one revocation log row as a replica applies it and
// WatchRevocations streams it.
type Revocation struct {
	Seq     int64
	TokenID string
	Key     cache.Key
	At      time.Time
	// Rotated marks a rotation: the token stays valid until NotAfter.
	Rotated  bool
	NotAfter time.Time
}

func revocationOf(r store.RevocationRecord) Revocation {
	v := Revocation{Seq: r.Seq, TokenID: r.TokenID, At: r.At, Rotated: r.Reason == store.RevocationRotated, NotAfter: r.NotAfter}
	copy(v.Key[:], r.Digest)
	return v
}

// RevocationLog is the part of the store the follower reads.
type RevocationLog interface {
	RevocationLogBounds(ctx context.Context) (oldest, head int64, err error)
	ListRevocations(ctx context.Context, after int64, limit int) ([]store.RevocationRecord, error)
	PruneRevocations(ctx context.Context, before time.Time) (int, error)
}

// RevocationCache is what applying a revocation does to this replica's
// validation cache (*cache.Cache).
type RevocationCache interface {
	// Revoke drops key from L1 and remembers the token id, so that no
	// stale copy is cached or served again.
	Revoke(key cache.Key, tokenID string, at, notAfter time.Time)
	// Flush empties L1: revocations were missed for good (the log was
	// pruned past what this replica applied).
	Flush()
}

// RevocationsConfig configures Revocations.
type RevocationsConfig struct {
	// Log is the store's revocation log (the source of truth).
	Log RevocationLog
	// Cache is this replica's validation cache; nil for none.
	Cache RevocationCache
	// Publish, when set, sends a row this replica wrote to every replica
	// (Redis pub/sub: the fast path). A failure is logged: the others read
	// the store's log within Poll anyway.
	Publish func(context.Context, Revocation) error
	// Invalidate, when set, deletes a revoked token's shared (Redis) cache
	// entry and leaves a tombstone; this replica's L1 is dropped before.
	Invalidate func(context.Context, cache.Key) error
	// PublishQueue bounds the revocations waiting for Invalidate and
	// Publish (DefaultPublishQueue). They run on one worker
	// (RunPublisher), never on the revoking call: a hung Redis must not hold an API
	// call the store has already committed.
	PublishQueue int
	// Poll is how often the log is read (DefaultRevocationPoll).
	Poll time.Duration
	// Retention is how long log rows are kept (every replica prunes older
	// ones every pruneEvery); zero keeps them forever.
	Retention time.Duration
	// Heartbeat, MaxStreams, MaxStreamsPerClient, Queue and Backlog bound
	// WatchRevocations (see the defaults).
	Heartbeat           time.Duration
	MaxStreams          int
	MaxStreamsPerClient int
	Queue               int
	Backlog             int
	Logger              *slog.Logger
}

// Revocations is a replica's revocation follower: it applies the store's
// revocation log in sequence order (from Redis messages when they come in
// order, else from the store: on a gap, when woken, and every Poll), and
// only after applying a row locally fans it out to this replica's
// WatchRevocations streams. So a follower that hears a revocation from a
// replica and asks that replica again is never told "valid".
type Revocations struct {
	cfg RevocationsConfig
	log *slog.Logger
	hub *revocationHub

	// mu serializes applying; applied is the last sequence applied (-1
	// until the log's head is first read).
	mu      sync.Mutex
	applied int64
	ready   chan struct{} // closed once applied is known
	wake    chan struct{}

	// outbox holds the Redis side of this replica's revocations, in
	// commit order; busy counts those queued or being sent. Pointers: a
	// buffer of the values themselves (~120 B each, with pointers) would
	// be ~120 KB the collector scans on every cycle, queued or not.
	outbox  chan *outgoing
	busy    atomic.Int64
	dropped atomic.Int64
}

// outgoing is one revocation's Redis side: publish is false for a no-op
// revocation (no log row), which still drops the shared cache entry.
type outgoing struct {
	v       Revocation
	publish bool
}

// NewRevocations returns a follower; Run starts it.
func NewRevocations(cfg RevocationsConfig) *Revocations {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultRevocationPoll
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultWatchHeartbeat
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxWatchStreams
	}
	if cfg.MaxStreamsPerClient <= 0 {
		cfg.MaxStreamsPerClient = DefaultMaxWatchStreamsPerClient
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultWatchQueue
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = DefaultWatchBacklog
	}
	if cfg.PublishQueue <= 0 {
		cfg.PublishQueue = DefaultPublishQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Revocations{
		outbox: make(chan *outgoing, cfg.PublishQueue),
		cfg:    cfg, log: cfg.Logger, applied: -1,
		hub:   newRevocationHub(cfg.MaxStreams, cfg.MaxStreamsPerClient, cfg.Queue),
		ready: make(chan struct{}), wake: make(chan struct{}, 1),
	}
}

// Run follows the log until ctx ends: it reads the head first (a new
// replica's cache is empty, so older rows need no applying), then catches
// up every Poll and whenever woken. RunPublisher runs beside it.
func (r *Revocations) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	failing := false
	for {
		err := r.CatchUp(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			r.log.WarnContext(ctx, "reading the revocation log failed; retrying every poll", "err", err.Error())
		case err == nil && failing:
			failing = false
			r.log.InfoContext(ctx, "reading the revocation log works again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		case <-prune.C:
			if r.cfg.Retention > 0 {
				if _, err := r.cfg.Log.PruneRevocations(ctx, time.Now().Add(-r.cfg.Retention)); err != nil {
					r.log.WarnContext(ctx, "pruning the revocation log failed", "err", err.Error())
				}
			}
		}
	}
}

// Wake makes Run read the log now: messages may have been lost.
func (r *Revocations) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Applied returns the last sequence this replica applied, or -1 before
// the log was first read.
func (r *Revocations) Applied() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// CatchUp applies every log row after the last applied one.
func (r *Revocations) CatchUp(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.catchUpLocked(ctx)
}

func (r *Revocations) catchUpLocked(ctx context.Context) error {
	if r.applied < 0 {
		_, head, err := r.cfg.Log.RevocationLogBounds(ctx)
		if err != nil {
			return err
		}
		r.applied = head
		r.hub.setHead(head)
		close(r.ready)
		return nil
	}
	for {
		rows, err := r.cfg.Log.ListRevocations(ctx, r.applied, revocationPage)
		if err != nil {
			return err
		}
		for _, row := range rows {
			r.applyLocked(revocationOf(row))
		}
		if len(rows) < revocationPage {
			return nil
		}
	}
}

// Offer applies a revocation heard on the fast path (Redis) or made here.
// In order, it is applied at once; a duplicate is ignored; after a gap
// the store's log is read first (sequences may also skip a value a rolled
// back transaction took, which costs one read). If the store cannot be
// read, the revocation still drops the token here, and the stream fan-out
// waits for the log.
func (r *Revocations) Offer(ctx context.Context, v Revocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.applied < 0 || v.Seq <= r.applied:
		if r.applied < 0 {
			r.revokeLocal(v)
		}
		return
	case v.Seq == r.applied+1:
		r.applyLocked(v)
		return
	}
	if err := r.catchUpLocked(ctx); err != nil {
		r.log.WarnContext(ctx, "reading the revocation log after a gap failed; applying locally meanwhile", "err", err.Error())
		r.revokeLocal(v)
		r.Wake()
		return
	}
	if v.Seq > r.applied {
		// Not in the store yet as far as this read saw: apply locally and
		// let the next read put it in order.
		r.revokeLocal(v)
		r.Wake()
	}
}

func (r *Revocations) revokeLocal(v Revocation) {
	if r.cfg.Cache != nil {
		r.cfg.Cache.Revoke(v.Key, v.TokenID, v.At, v.NotAfter)
	}
}

// applyLocked drops the token here, THEN tells this replica's streams.
func (r *Revocations) applyLocked(v Revocation) {
	r.revokeLocal(v)
	r.applied = v.Seq
	r.hub.publish(v)
}

// Committed is called after this replica wrote a log row: it applies the
// row here at once, and queues its Redis side (the shared cache entry's
// deletion, then the publish to the other replicas) for the worker.
func (r *Revocations) Committed(ctx context.Context, v Revocation) {
	r.Offer(ctx, v)
	r.enqueue(outgoing{v: v, publish: true})
}

// Uncommitted is called for a revocation that wrote no log row (the token
// was revoked already): the Redis side is only the cache entry's deletion.
func (r *Revocations) Uncommitted(v Revocation) {
	if r.cfg.Cache != nil {
		r.cfg.Cache.Revoke(v.Key, v.TokenID, v.At, v.NotAfter)
	}
	r.enqueue(outgoing{v: v})
}

func (r *Revocations) enqueue(o outgoing) {
	if r.cfg.Publish == nil && r.cfg.Invalidate == nil {
		return
	}
	r.busy.Add(1)
	select {
	case r.outbox <- &o:
	default:
		r.busy.Add(-1)
		r.dropped.Add(1)
		r.log.Warn("revocation publish queue full; other replicas read this revocation from the store's log", "token_id", o.v.TokenID, "queue", cap(r.outbox))
	}
}

// RunPublisher runs the Redis side of this replica's revocations, one at
// a time in commit order, until ctx ends; each call is bounded by the
// Redis client's revocation timeout.
func (r *Revocations) RunPublisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-r.outbox:
			r.send(ctx, *o)
			r.busy.Add(-1)
		}
	}
}

func (r *Revocations) send(ctx context.Context, o outgoing) {
	if r.cfg.Invalidate != nil {
		if err := r.cfg.Invalidate(ctx, o.v.Key); err != nil {
			r.log.WarnContext(ctx, "deleting a revoked token's shared cache entry failed; retrying in the background", "token_id", o.v.TokenID, "err", err.Error())
		}
	}
	if o.publish && r.cfg.Publish != nil {
		if err := r.cfg.Publish(ctx, o.v); err != nil {
			r.log.WarnContext(ctx, "publishing a revocation failed; other replicas read it from the store's log", "token_id", o.v.TokenID, "err", err.Error())
		}
	}
}

// Unsent is how many of this replica's revocations wait for their Redis
// side (queued, or being sent now).
func (r *Revocations) Unsent() int { return int(r.busy.Load()) }

// Dropped is how many revocations found the publish queue full.
func (r *Revocations) Dropped() int64 { return r.dropped.Load() }

// Close ends every WatchRevocations stream (at shutdown, so graceful stop
// need not wait for them) and refuses new ones.
func (r *Revocations) Close() { r.hub.close() }

// isReady reports whether the log's head has been read, so a subscription's
// head means something.
func (r *Revocations) isReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// subscribe registers a WatchRevocations stream from client and returns
// the head at that instant: every revocation applied after it is queued.
func (r *Revocations) subscribe(client string) (*revocationSub, int64, error) {
	return r.hub.subscribe(client)
}

// Streams is how many WatchRevocations streams are open.
func (r *Revocations) Streams() int { return r.hub.count() }

// backlog reads the log rows in (after, upTo] for a resuming stream; ok
// false when there are more than Backlog of them.
func (r *Revocations) backlog(ctx context.Context, after, upTo int64) ([]Revocation, bool, error) {
	var out []Revocation
	for after < upTo {
		rows, err := r.cfg.Log.ListRevocations(ctx, after, revocationPage)
		if err != nil {
			return nil, false, err
		}
		for _, row := range rows {
			if row.Seq > upTo {
				return out, true, nil
			}
			out = append(out, revocationOf(row))
			after = row.Seq
		}
		if len(out) > r.cfg.Backlog {
			return nil, false, nil
		}
		if len(rows) < revocationPage {
			break
		}
	}
	return out, true, nil
}

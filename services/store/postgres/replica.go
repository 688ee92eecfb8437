package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keymint/keymint/services/store"
)

// Read-replica defaults (README configuration table).
const (
	// DefaultReplicaMaxLag bounds how far behind the primary a replica may be
	// and still answer: past it every read goes to the primary.
	DefaultReplicaMaxLag = time.Second
	// DefaultReplicaTimeout bounds one replica query; a slower (or stopped)
	// replica is abandoned for the primary.
	DefaultReplicaTimeout = 500 * time.Millisecond
	// DefaultReplicaSampleInterval is how often the primary's and the
	// replica's WAL positions are compared.
	DefaultReplicaSampleInterval = 100 * time.Millisecond
)

// ReplicaConfig configures a read replica. Zero durations take the defaults.
type ReplicaConfig struct {
	// URL is the replica's (a hot standby's) URL; it may list several hosts
	// (target_session_attrs=prefer-standby and the like).
	URL            string
	MaxLag         time.Duration
	Timeout        time.Duration
	SampleInterval time.Duration
}

// Replicated is a Store whose validation lookups (GetTokenByDigest) and
// token lists (ListTokens) may be answered by a streaming replica. Every
// write and every other read goes to the primary. The rules, which keep
// "a token that exists always validates" and "no stale positive after a
// revocation":
//
//   - The replica answers only while it is fresh: it has replayed every
//     commit the primary had made MaxLag ago (measured by comparing WAL
//     positions every SampleInterval), else the primary answers.
//   - A token the replica does not have is looked up on the primary
//     (read-your-writes: a token minted a moment ago validates), and so is
//     one with a usage counter (the primary's counter rules).
//   - A replica error or timeout falls back to the primary.
//   - A revocation or rotation returns only once the replica has replayed it
//     or MaxLag has passed, whichever is first; the caller invalidates caches
//     after that, so a cache fill that starts afterwards reads a replica that
//     has the revocation, or none at all.
//   - The replica answers only once it has replayed this process's last
//     write to a token as well (read-your-writes on one keymint; across
//     keymint replicas a list may be up to MaxLag old).
type Replicated struct {
	*Store // the primary
	read   *Store
	cfg    ReplicaConfig

	// freshAt: every commit the primary made before it is on the replica
	// (zero: not known yet).
	mu      sync.Mutex
	freshAt time.Time
	pending []walSample

	replayed  atomic.Int64 // the replica's last known replay position
	lastWrite atomic.Int64 // the primary's position after this process's last write

	replicaReads, primaryReads atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// walSample is the primary's WAL position read just after at.
type walSample struct {
	at  time.Time
	lsn int64
}

var _ store.Store = (*Replicated)(nil)

// OpenReplicated returns primary with reads routed to the replica at
// cfg.URL as described on Replicated. The replica is not migrated (a
// standby is read-only); it is not pinged either: a replica that is down
// at start only means the primary answers until it is up.
func OpenReplicated(ctx context.Context, primary *Store, cfg ReplicaConfig) (*Replicated, error) {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultReplicaMaxLag
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReplicaTimeout
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = DefaultReplicaSampleInterval
	}
	pool, err := newPool(ctx, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r := &Replicated{Store: primary, read: &Store{pool: pool}, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	go r.sampleLoop()
	return r, nil
}

// GetTokenByDigest reads the replica when it is fresh and has the token;
// otherwise the primary.
func (r *Replicated) GetTokenByDigest(ctx context.Context, digests [][]byte) (store.Token, error) {
	if r.usable() {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		t, err := r.read.GetTokenByDigest(rctx, digests)
		cancel()
		if err == nil && t.UsagePool == "" {
			r.replicaReads.Add(1)
			return t, nil
		}
		if ctx.Err() != nil {
			return store.Token{}, ctx.Err()
		}
	}
	r.primaryReads.Add(1)
	return r.Store.GetTokenByDigest(ctx, digests)
}

// TokensByDigests is GetTokenByDigest's rules in bulk (concurrent
// validation misses share it): the replica answers, when usable, for the
// digests it has a token without a usage counter for; the primary answers
// for the rest.
func (r *Replicated) TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error) {
	rest := digests
	var out []store.Token
	if r.usable() {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		ts, err := r.read.TokensByDigests(rctx, digests)
		cancel()
		if err == nil {
			answered := make(map[string]bool, len(ts))
			for _, t := range ts {
				if t.UsagePool == "" {
					out = append(out, t)
					answered[string(t.Digest)] = true
				}
			}
			rest = make([][]byte, 0, len(digests)-len(out))
			for _, d := range digests {
				if !answered[string(d)] {
					rest = append(rest, d)
				}
			}
			r.replicaReads.Add(1)
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	r.primaryReads.Add(1)
	ts, err := r.Store.TokensByDigests(ctx, rest)
	if err != nil {
		return nil, err
	}
	return append(out, ts...), nil
}

// ListTokens reads the replica when it is fresh and has replayed this
// process's last write; otherwise the primary.
func (r *Replicated) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	if r.usable() {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		ts, err := r.read.ListTokens(rctx, f)
		cancel()
		// ErrNotFound (an AfterID the replica lacks) is asked of the primary too.
		if err == nil {
			r.replicaReads.Add(1)
			return ts, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	r.primaryReads.Add(1)
	return r.Store.ListTokens(ctx, f)
}

// CreateToken writes to the primary and remembers the write for lists.
func (r *Replicated) CreateToken(ctx context.Context, t store.Token, events ...store.Event) error {
	if err := r.Store.CreateToken(ctx, t, events...); err != nil {
		return err
	}
	r.noteWrite(ctx)
	return nil
}

// RevokeToken revokes on the primary and waits (at most MaxLag) for the
// replica to replay it.
func (r *Replicated) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	t, err := r.Store.RevokeToken(ctx, id, at, events...)
	if err == nil {
		r.awaitReplica(ctx, r.noteWrite(ctx))
	}
	return t, err
}

// RotateToken rotates on the primary and waits (at most MaxLag) for the
// replica to replay it.
func (r *Replicated) RotateToken(ctx context.Context, id string, successor store.Token, graceEnd time.Time, events ...store.Event) (store.Token, error) {
	t, err := r.Store.RotateToken(ctx, id, successor, graceEnd, events...)
	if err == nil {
		r.awaitReplica(ctx, r.noteWrite(ctx))
	}
	return t, err
}

// DisableUser disables on the primary and waits (at most MaxLag) for the
// replica to replay it, as RevokeToken does: a validation that reads the
// replica afterwards must see the tokens revoked.
func (r *Replicated) DisableUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error) {
	out, err := r.Store.DisableUser(ctx, userID, at, events...)
	if err == nil && out.Changed {
		r.awaitReplica(ctx, r.noteWrite(ctx))
	}
	return out, err
}

// DeleteUser deletes on the primary and waits (at most MaxLag) for the
// replica to replay it.
func (r *Replicated) DeleteUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error) {
	out, err := r.Store.DeleteUser(ctx, userID, at, events...)
	if err == nil {
		r.awaitReplica(ctx, r.noteWrite(ctx))
	}
	return out, err
}

// TouchTokens writes to the primary and remembers the write.
func (r *Replicated) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	if err := r.Store.TouchTokens(ctx, lastUsed); err != nil {
		return err
	}
	r.noteWrite(ctx)
	return nil
}

// TakeTokenUses writes to the primary and remembers the write.
func (r *Replicated) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	taken, left, err := r.Store.TakeTokenUses(ctx, id, n)
	if err == nil {
		r.noteWrite(ctx)
	}
	return taken, left, err
}

// Close stops the sampler and closes both pools.
func (r *Replicated) Close() error {
	close(r.stop)
	<-r.done
	r.read.pool.Close()
	return r.Store.Close()
}

// ReplicaReads and PrimaryReads count the routed reads (for metrics and
// tests).
func (r *Replicated) ReplicaReads() int64 { return r.replicaReads.Load() }

// PrimaryReads counts the routed reads the primary answered.
func (r *Replicated) PrimaryReads() int64 { return r.primaryReads.Load() }

// Fresh reports whether the replica may answer now.
func (r *Replicated) Fresh() bool { return r.fresh() }

// usable reports whether a read may go to the replica: it is fresh and
// has replayed this process's last token write.
func (r *Replicated) usable() bool {
	return r.fresh() && r.replayed.Load() >= r.lastWrite.Load()
}

func (r *Replicated) fresh() bool {
	r.mu.Lock()
	at := r.freshAt
	r.mu.Unlock()
	return !at.IsZero() && time.Since(at) < r.cfg.MaxLag
}

// noteWrite records the primary's WAL position after a write this process
// made and returns it (0 if unknown: the caller then waits the full MaxLag).
func (r *Replicated) noteWrite(ctx context.Context) int64 {
	lsn, err := walPosition(ctx, r.Store.pool, currentLSN)
	if err != nil {
		// Unknown: no list may use the replica until a sample passes the
		// write (the sampler cannot tell, so pessimistically never).
		lsn = 1 << 62
	}
	for {
		old := r.lastWrite.Load()
		if lsn <= old || r.lastWrite.CompareAndSwap(old, lsn) {
			break
		}
	}
	if err != nil {
		return 0
	}
	return lsn
}

// awaitReplica waits until the replica has replayed lsn, MaxLag passed, or
// ctx ended. Past MaxLag the replica no longer counts as fresh for any read
// that starts later, unless it has caught up.
func (r *Replicated) awaitReplica(ctx context.Context, lsn int64) {
	deadline := time.NewTimer(r.cfg.MaxLag)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if lsn > 0 {
			qctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
			replay, err := walPosition(qctx, r.read.pool, replayLSN)
			cancel()
			if err == nil {
				r.noteReplayed(replay)
				if replay >= lsn {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// noteReplayed raises the replica's known replay position to lsn.
func (r *Replicated) noteReplayed(lsn int64) {
	for {
		old := r.replayed.Load()
		if lsn <= old || r.replayed.CompareAndSwap(old, lsn) {
			return
		}
	}
}

// sampleLoop compares WAL positions every SampleInterval until Close.
func (r *Replicated) sampleLoop() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.SampleInterval)
	defer tick.Stop()
	for {
		r.sample()
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// sample reads the primary's position, then the replica's replay position,
// and advances freshAt to the newest sample the replica has passed.
func (r *Replicated) sample() {
	// Bounded by the sample count MaxLag can use: older samples could only
	// set a freshAt that is stale already.
	maxPending := int(r.cfg.MaxLag/r.cfg.SampleInterval) + 2
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	at := time.Now()
	if lsn, err := walPosition(ctx, r.Store.pool, currentLSN); err == nil {
		r.mu.Lock()
		r.pending = append(r.pending, walSample{at: at, lsn: lsn})
		if len(r.pending) > maxPending {
			r.pending = r.pending[len(r.pending)-maxPending:]
		}
		r.mu.Unlock()
	}
	replay, err := walPosition(ctx, r.read.pool, replayLSN)
	if err != nil {
		return
	}
	r.noteReplayed(replay)
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for ; i < len(r.pending) && r.pending[i].lsn <= replay; i++ {
		r.freshAt = r.pending[i].at
	}
	r.pending = r.pending[i:]
}

// WAL position queries, as bytes since 0/0. On a server that is not in
// recovery pg_last_wal_replay_lsn() is NULL: a "replica" that is a primary
// (promoted, or misconfigured) is never fresh, as nothing says it follows
// the primary keymint writes to.
const (
	currentLSN = "SELECT (pg_current_wal_lsn() - '0/0')::bigint"
	replayLSN  = "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint"
)

var errNotStandby = errors.New("not a standby")

func walPosition(ctx context.Context, pool *pgxpool.Pool, query string) (int64, error) {
	var lsn *int64
	if err := pool.QueryRow(ctx, query).Scan(&lsn); err != nil {
		return 0, err
	}
	if lsn == nil {
		return 0, errNotStandby
	}
	return *lsn, nil
}

package tokens

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"
)

// Toucher persists last-use times in batches.
type Toucher interface {
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
}

// UsageRecorder keeps last_used_at without a store write per validation:
// uses are coalesced in memory and flushed in one batch every interval and on
// shutdown. Record sits on the validation hot path, so the pending uses are
// sharded by token id (concurrent validations of different tokens rarely
// share a lock), and a use within usageResolution of the one already pending
// is not recorded again: last_used_at is accurate to about a second.
type UsageRecorder struct {
	store    Toucher
	interval time.Duration
	log      *slog.Logger
	shards   [usageShards]usageShard
}

const (
	usageShards     = 16
	usageResolution = time.Second
)

type usageShard struct {
	mu      sync.Mutex
	pending map[string]time.Time
	_       [48]byte // keep shards on separate cache lines
}

// NewUsageRecorder returns a recorder flushing every interval (default 5 s).
func NewUsageRecorder(store Toucher, interval time.Duration, log *slog.Logger) *UsageRecorder {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	u := &UsageRecorder{store: store, interval: interval, log: log}
	for i := range u.shards {
		u.shards[i].pending = map[string]time.Time{}
	}
	return u
}

// tokenIDSeed spreads token ids over the usage shards and the answer
// slots (Server.answers).
var tokenIDSeed = maphash.MakeSeed()

func (u *UsageRecorder) shard(id string) *usageShard {
	// maphash (the runtime's AES-based string hash): a byte-at-a-time
	// FNV-1a over a 36-character id was a chain of 36 multiplications on
	// every validation.
	return &u.shards[maphash.String(tokenIDSeed, id)%usageShards]
}

// Record notes that token id was used at t.
func (u *UsageRecorder) Record(id string, t time.Time) {
	sh := u.shard(id)
	sh.mu.Lock()
	if prev, ok := sh.pending[id]; !ok || t.Sub(prev) >= usageResolution {
		sh.pending[id] = t
	}
	sh.mu.Unlock()
}

// merge puts back uses a failed flush could not write, keeping the later time.
func (u *UsageRecorder) merge(id string, t time.Time) {
	sh := u.shard(id)
	sh.mu.Lock()
	if t.After(sh.pending[id]) {
		sh.pending[id] = t
	}
	sh.mu.Unlock()
}

// Flush writes the pending uses in one batch. On failure they are merged
// back, so the next flush retries them.
func (u *UsageRecorder) Flush(ctx context.Context) error {
	batch := map[string]time.Time{}
	for i := range u.shards {
		sh := &u.shards[i]
		sh.mu.Lock()
		if len(sh.pending) > 0 {
			for id, t := range sh.pending {
				batch[id] = t
			}
			sh.pending = make(map[string]time.Time, len(sh.pending))
		}
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return nil
	}
	err := u.store.TouchTokens(ctx, batch)
	if err != nil {
		for id, t := range batch {
			u.merge(id, t)
		}
	}
	return err
}

// Run flushes every interval until ctx ends, then flushes once more with a
// short deadline of its own.
func (u *UsageRecorder) Run(ctx context.Context) {
	tick := time.NewTicker(u.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := u.Flush(ctx); err != nil {
				u.log.WarnContext(ctx, "last-used flush failed; will retry", "err", err.Error())
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := u.Flush(fctx); err != nil {
				u.log.Warn("final last-used flush failed", "err", err.Error())
			}
			cancel()
			return
		}
	}
}

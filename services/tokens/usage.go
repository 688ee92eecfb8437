package tokens

import (
	"context"
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
// shutdown.
type UsageRecorder struct {
	store    Toucher
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

// NewUsageRecorder returns a recorder flushing every interval (default 5 s).
func NewUsageRecorder(store Toucher, interval time.Duration, log *slog.Logger) *UsageRecorder {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &UsageRecorder{store: store, interval: interval, log: log, pending: map[string]time.Time{}}
}

// Record notes that token id was used at t.
func (u *UsageRecorder) Record(id string, t time.Time) {
	u.mu.Lock()
	if t.After(u.pending[id]) {
		u.pending[id] = t
	}
	u.mu.Unlock()
}

// Flush writes the pending uses in one batch. On failure they are merged
// back, so the next flush retries them.
func (u *UsageRecorder) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[string]time.Time, len(batch))
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := u.store.TouchTokens(ctx, batch)
	if err != nil {
		for id, t := range batch {
			u.Record(id, t)
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

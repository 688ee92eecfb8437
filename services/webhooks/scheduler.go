package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
)

// Scheduler defaults (README's configuration table).
var DefaultExpiryWindows = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}

const (
	DefaultSchedulerInterval = time.Minute
	DefaultExpiredLookback   = 7 * 24 * time.Hour
	// DefaultSchedulerBatch bounds the tokens one query returns.
	DefaultSchedulerBatch = 500
)

// NoticeExpired is the marker of a token.expired notice.
const NoticeExpired = "expired"

// NoticeExpiring is the marker of a token.expiring notice for window w.
func NoticeExpiring(w time.Duration) string {
	return "expiring:" + strconv.FormatInt(int64(w/time.Second), 10)
}

// ScheduleStore is what a Scheduler needs of store.Store.
type ScheduleStore interface {
	OrgExpiryWindows(ctx context.Context) ([]time.Duration, error)
	ExpiringTokens(ctx context.Context, q store.ExpiryQuery) ([]store.Token, error)
	RecordTokenNotice(ctx context.Context, id, notice string, at time.Time, events ...store.Event) (bool, error)
}

// SchedulerConfig configures a Scheduler; zero values take the defaults.
type SchedulerConfig struct {
	Store  ScheduleStore
	Logger *slog.Logger
	Now    func() time.Time
	// Windows are how long before expiry token.expiring goes out, one
	// event per window, for organizations that set no windows of their own
	// (OrgPolicy.ExpiryWarnings).
	Windows []time.Duration
	// Interval spaces the scans.
	Interval time.Duration
	// Lookback is how far back a missed token.expired is still sent (a
	// replica down longer than this skips those).
	Lookback time.Duration
	Batch    int
}

// Scheduler emits token.expiring and token.expired. Each scan reads a range
// of the expiry index (tokens expiring within a window, not yet noticed),
// never the table; the notice marker, written in the transaction of the
// event, makes each notice go out once across replicas and restarts.
type Scheduler struct {
	cfg SchedulerConfig
	log *slog.Logger
}

// NewScheduler returns a Scheduler.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Windows) == 0 {
		cfg.Windows = DefaultExpiryWindows
	}
	cfg.Windows = slices.Clone(cfg.Windows)
	slices.Sort(cfg.Windows)
	cfg.Windows = slices.Compact(cfg.Windows)
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSchedulerInterval
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = DefaultExpiredLookback
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultSchedulerBatch
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger}
}

// Run scans every Interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	for {
		if _, err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "expiry scan failed; retrying", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Interval):
		}
	}
}

// Step runs one scan at the clock's now and returns how many notices it
// recorded. Every window in use (the defaults and each organization's) is
// one range of the expiry index: window w covers expiries in (now + next
// narrower window in use, now + w], for tokens of organizations using w,
// minted more than w before their expiry; so a token inside several
// windows gets the narrowest one's warning only.
func (s *Scheduler) Step(ctx context.Context) (int, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	n := 0
	var errs []error
	windows := s.cfg.Windows
	if orgs, err := s.cfg.Store.OrgExpiryWindows(ctx); err != nil {
		errs = append(errs, fmt.Errorf("expiry windows of organizations: %w", err))
	} else {
		windows = append(slices.Clone(windows), orgs...)
		slices.Sort(windows)
		windows = slices.Compact(windows)
	}
	lower := time.Duration(0)
	for _, w := range windows {
		notice := NoticeExpiring(w)
		q := store.ExpiryQuery{After: now.Add(lower), Until: now.Add(w), MinLifetime: w, Notice: notice, Limit: s.cfg.Batch,
			Window: w, DefaultWindow: slices.Contains(s.cfg.Windows, w)}
		lower = w
		k, err := s.notify(ctx, q, func(t store.Token) store.Event { return events.Expiring(t, w, now) }, now)
		n += k
		errs = append(errs, err)
	}
	q := store.ExpiryQuery{After: now.Add(-s.cfg.Lookback), Until: now, Notice: NoticeExpired, Limit: s.cfg.Batch}
	k, err := s.notify(ctx, q, func(t store.Token) store.Event {
		return events.TokenEvent(events.TokenExpired, t, t.ExpiresAt, nil)
	}, now)
	return n + k, errors.Join(append(errs, err)...)
}

// notify records q's notice, with its event, for every token q selects,
// batch after batch until none is left.
func (s *Scheduler) notify(ctx context.Context, q store.ExpiryQuery, event func(store.Token) store.Event, now time.Time) (int, error) {
	n := 0
	for {
		ts, err := s.cfg.Store.ExpiringTokens(ctx, q)
		if err != nil {
			return n, fmt.Errorf("scan %s: %w", q.Notice, err)
		}
		for _, t := range ts {
			ok, err := s.cfg.Store.RecordTokenNotice(ctx, t.ID, q.Notice, now, event(t))
			if err != nil {
				return n, fmt.Errorf("record %s of token %s: %w", q.Notice, t.ID, err)
			}
			if ok {
				n++
			}
		}
		if len(ts) < q.Limit {
			return n, nil
		}
		// Every token returned now has its marker (or is no longer active),
		// so the next query starts past them.
	}
}

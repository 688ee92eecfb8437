package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
)

// Throttle notice bounds (README's configuration table).
const (
	// DefaultThrottlePeriod is how long refused sign-ins are counted before
	// one signin.throttled per organization goes out.
	DefaultThrottlePeriod = 5 * time.Minute
	// MaxThrottledAccounts bounds the accounts remembered per period; a
	// flood naming more is counted for those first seen, the rest dropped
	// (and logged as dropped).
	MaxThrottledAccounts = 1000
)

// ThrottleStore is what a ThrottleNotices needs of store.Store.
type ThrottleStore interface {
	GetUserByEmail(ctx context.Context, email string) (store.User, error)
	AppendEvents(ctx context.Context, events ...store.Event) error
}

// ThrottleNotices aggregates refused sign-in attempts into one
// signin.throttled event per organization and period, never one per
// attempt: Observe only counts in memory (bounded); Flush looks up each
// account once and writes the events. Attempts naming no account belong to
// no organization and are dropped.
type ThrottleNotices struct {
	st     ThrottleStore
	log    *slog.Logger
	now    func() time.Time
	period time.Duration

	mu      sync.Mutex
	from    time.Time
	counts  map[string]int64
	dropped int64
}

// NewThrottleNotices returns an aggregator flushed every period (zero:
// DefaultThrottlePeriod) by Run.
func NewThrottleNotices(st ThrottleStore, period time.Duration, now func() time.Time, log *slog.Logger) *ThrottleNotices {
	if period <= 0 {
		period = DefaultThrottlePeriod
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ThrottleNotices{st: st, log: log, now: now, period: period, from: now().UTC(), counts: map[string]int64{}}
}

// Observe counts one refused attempt on an account (a normalized email).
// It never blocks on I/O.
func (n *ThrottleNotices) Observe(email string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.counts[email]; !ok && len(n.counts) >= MaxThrottledAccounts {
		n.dropped++
		return
	}
	n.counts[email]++
}

// Run flushes every period until ctx ends, and once more then.
func (n *ThrottleNotices) Run(ctx context.Context) {
	t := time.NewTicker(n.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = n.Flush(fctx)
			cancel()
			return
		case <-t.C:
			if err := n.Flush(ctx); err != nil {
				n.log.WarnContext(ctx, "signin.throttled notices not written", "err", err.Error())
			}
		}
	}
}

// Flush writes what was counted since the last flush and starts a new
// period; it returns how many events it wrote.
func (n *ThrottleNotices) Flush(ctx context.Context) error {
	n.mu.Lock()
	counts, dropped, from := n.counts, n.dropped, n.from
	n.counts, n.dropped, n.from = map[string]int64{}, 0, n.now().UTC()
	n.mu.Unlock()
	if dropped > 0 {
		n.log.WarnContext(ctx, "refused sign-ins on too many accounts to list", "dropped_attempts", dropped)
	}
	byOrg := map[string][]events.ThrottledUser{}
	var errs []error
	for email, c := range counts {
		u, err := n.st.GetUserByEmail(ctx, email)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byOrg[u.OrgID] = append(byOrg[u.OrgID], events.ThrottledUser{UserID: u.ID, Email: u.Email, Attempts: c})
	}
	to := n.now().UTC()
	var evs []store.Event
	for org, users := range byOrg {
		slices.SortFunc(users, func(a, b events.ThrottledUser) int { return int(b.Attempts - a.Attempts) })
		evs = append(evs, events.Throttled(org, from, to, users))
	}
	if len(evs) > 0 {
		errs = append(errs, n.st.AppendEvents(ctx, evs...))
	}
	return errors.Join(errs...)
}

package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
)

// Dispatcher defaults (README's configuration table).
const (
	DefaultConcurrency  = 4
	DefaultTimeout      = 10 * time.Second
	DefaultRetryFor     = 72 * time.Hour
	DefaultDisableAfter = 5 * 24 * time.Hour
	DefaultPoll         = time.Second
	DefaultRetention    = 7 * 24 * time.Hour
	// BackoffBase and BackoffMax shape the retry delays: BackoffBase·2^n
	// for the n-th retry, capped at BackoffMax, each jittered down to half.
	BackoffBase = 5 * time.Second
	BackoffMax  = time.Hour
	// pruneEvery spaces the outbox clean-ups.
	pruneEvery = time.Hour
)

// DispatchStore is what a Dispatcher needs of store.Store.
type DispatchStore interface {
	ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.ClaimedDelivery, error)
	FinishWebhookDelivery(ctx context.Context, owner string, a store.DeliveryAttempt) (time.Time, error)
	GetWebhookEndpoint(ctx context.Context, orgID, id string) (store.WebhookEndpoint, error)
	DisableWebhookEndpoint(ctx context.Context, id string, at time.Time, events ...store.Event) (bool, error)
	PruneWebhookOutbox(ctx context.Context, before time.Time) (int, error)
}

// DispatcherConfig configures a Dispatcher; zero values take the defaults.
type DispatcherConfig struct {
	Store  DispatchStore
	Sealer *Sealer
	Sender *Sender
	// Audit records endpoints disabled for failing; nil records nothing.
	Audit  *audit.Recorder
	Logger *slog.Logger
	Now    func() time.Time
	// Owner names this replica's leases; empty: random.
	Owner string
	// Concurrency is how many deliveries are in flight at once (also the
	// claim size, so nothing waits under a lease it cannot use).
	Concurrency int
	// Timeout bounds one attempt; Lease must exceed it (default 2·Timeout
	// + 30s): a lease that runs out mid-attempt lets another replica send
	// the same event again.
	Timeout time.Duration
	Lease   time.Duration
	// RetryFor is how long a delivery is retried after it was queued.
	RetryFor time.Duration
	// DisableAfter disables an endpoint whose attempts all failed this long.
	DisableAfter time.Duration
	// Poll is how often the outbox is read when it was empty.
	Poll time.Duration
	// Retention keeps finished deliveries listable (and replayable) this long.
	Retention time.Duration
}

// Dispatcher delivers the outbox: it leases due deliveries, signs and posts
// them, and records each attempt. Delivery is at least once: a replica that
// dies mid-attempt leaves its lease to run out, and another (or itself,
// restarted) sends the event again under the same webhook-id.
type Dispatcher struct {
	cfg       DispatcherConfig
	log       *slog.Logger
	lastPrune time.Time
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Owner == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.Owner = hex.EncodeToString(b)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2*cfg.Timeout + 30*time.Second
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger}
}

// Run delivers until ctx ends, then waits for the attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := d.Step(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.WarnContext(ctx, "webhook dispatch failed; retrying", "err", err.Error())
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-time.After(d.cfg.Poll):
		}
	}
}

// Step claims one batch of due deliveries, attempts them concurrently and
// returns how many it attempted. Tests drive it directly, with their clock.
func (d *Dispatcher) Step(ctx context.Context) (int, error) {
	now := d.cfg.Now()
	if now.Sub(d.lastPrune) >= pruneEvery {
		d.lastPrune = now
		if n, err := d.cfg.Store.PruneWebhookOutbox(ctx, now.Add(-d.cfg.Retention)); err != nil {
			d.log.WarnContext(ctx, "webhook outbox not pruned", "err", err.Error())
		} else if n > 0 {
			d.log.InfoContext(ctx, "webhook outbox pruned", "deliveries", n)
		}
	}
	claimed, err := d.cfg.Store.ClaimWebhookDeliveries(ctx, d.cfg.Owner, now, d.cfg.Lease, d.cfg.Concurrency)
	if err != nil {
		return 0, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.attempt(context.WithoutCancel(ctx), c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(claimed), errors.Join(errs...)
}

// attempt sends one claimed delivery and records the outcome. It runs on a
// context detached from shutdown (bounded by the timeout), so an attempt
// that got its answer is recorded rather than left to a lease.
func (d *Dispatcher) attempt(ctx context.Context, c store.ClaimedDelivery) error {
	a := store.DeliveryAttempt{DeliveryID: c.Delivery.ID}
	secret, err := d.cfg.Sealer.Open(c.Endpoint.Secret, c.Endpoint.ID)
	if err != nil {
		a.Error = "signing secret unreadable (wrong webhook key?)"
		d.log.ErrorContext(ctx, "webhook secret does not open", "endpoint_id", c.Endpoint.ID, "err", err.Error())
	} else {
		sctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		ts := d.cfg.Now()
		start := time.Now()
		var sig string
		sig, err = Sign(secret, c.Event.ID, ts, c.Event.Payload)
		if err == nil {
			a.Status, err = d.cfg.Sender.Send(sctx, c.Endpoint.URL, c.Event.ID, ts, sig, c.Event.Payload)
		}
		cancel()
		a.Latency = time.Since(start)
		switch {
		case err != nil:
			a.Error = err.Error()
		case a.Status >= 200 && a.Status < 300:
			a.OK = true
		default:
			a.Error = fmt.Sprintf("HTTP %d", a.Status)
		}
	}
	a.At = d.cfg.Now()
	if !a.OK && a.At.Sub(c.Delivery.CreatedAt) < d.cfg.RetryFor {
		a.RetryAt = a.At.Add(Backoff(c.Delivery.Attempts))
	}
	fctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	failingSince, err := d.cfg.Store.FinishWebhookDelivery(fctx, d.cfg.Owner, a)
	if errors.Is(err, store.ErrConflict) {
		// The lease ran out and another replica took over: its attempt counts.
		d.log.WarnContext(ctx, "webhook lease lost mid-attempt", "delivery_id", c.Delivery.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record attempt of delivery %d: %w", c.Delivery.ID, err)
	}
	d.log.DebugContext(ctx, "webhook attempt", "delivery_id", c.Delivery.ID, "endpoint_id", c.Endpoint.ID,
		"event_type", c.Event.Type, "status", a.Status, "ok", a.OK, "err", a.Error)
	if !a.OK && !failingSince.IsZero() && a.At.Sub(failingSince) >= d.cfg.DisableAfter {
		return d.disable(fctx, c.Endpoint, failingSince, a.At)
	}
	return nil
}

// disable turns off an endpoint that has failed for DisableAfter, telling
// the org's other endpoints (webhook.disabled) and the audit log.
func (d *Dispatcher) disable(ctx context.Context, e store.WebhookEndpoint, failingSince, at time.Time) error {
	full, err := d.cfg.Store.GetWebhookEndpoint(ctx, e.OrgID, e.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disable endpoint %s: %w", e.ID, err)
	}
	changed, err := d.cfg.Store.DisableWebhookEndpoint(ctx, e.ID, at, events.Disabled(full, failingSince, at))
	if err != nil || !changed {
		return err
	}
	d.log.WarnContext(ctx, "webhook endpoint disabled after failing", "endpoint_id", e.ID, "org_id", e.OrgID,
		"failing_since", failingSince)
	d.cfg.Audit.Record(ctx, store.AuditEvent{OrgID: e.OrgID, ActorEmail: AuditActor, Action: audit.WebhookDisabled,
		TargetID: e.ID})
	return nil
}

// AuditActor names keymint's webhook machinery in the audit log.
const AuditActor = "webhooks"

// Backoff is the delay before retry n+1 after n earlier attempts:
// BackoffBase·2^n capped at BackoffMax, with jitter down to half of it so
// receivers recovering from an outage are not hit by every sender at once.
func Backoff(n int) time.Duration {
	d := BackoffMax
	if n < 20 {
		d = min(BackoffBase<<n, BackoffMax)
	}
	return d/2 + mrand.N(d/2+1)
}

// Package audit is keymint's audit log: the names of the security-relevant
// actions it records (actions.go: sign-ins, sign-outs, token mints,
// rotations and revocations, leak reports, password, policy and webhook
// changes), the Recorder that writes them to the store with who acted, for
// which organization, on what, from which address and client, and List,
// the reading rules of AccountService.ListAuditEvents (list.go).
// Validation is never audited: it is the hot path, and its volume would
// drown the log.
package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/clientip"
	"github.com/keymint/keymint/services/store"
)

// Store is what the Recorder needs of store.Store.
type Store interface {
	AppendAuditEvent(ctx context.Context, e store.AuditEvent) error
}

// writeTimeout bounds one write. A write outlives a caller that hung up
// (the action it records happened all the same), but never by more.
const writeTimeout = 3 * time.Second

// Recorder writes audit events. A nil *Recorder records nothing.
type Recorder struct {
	store   Store
	clients *clientip.Resolver
	log     *slog.Logger
	now     func() time.Time
}

// Config configures a Recorder.
type Config struct {
	Store Store
	// Clients finds the caller's address and user agent in a gRPC call's
	// context (nil trusts no proxy).
	Clients *clientip.Resolver
	Logger  *slog.Logger
	Now     func() time.Time
}

// New returns a Recorder.
func New(cfg Config) *Recorder {
	r := &Recorder{store: cfg.Store, clients: cfg.Clients, log: cfg.Logger, now: cfg.Now}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Record writes e, filling its id, time, client address and user agent. It
// writes synchronously, so an event is listable once the call it records
// has answered; a failed write is logged and does not fail that call (the
// action itself has happened, or has been refused, either way).
func (r *Recorder) Record(ctx context.Context, e store.AuditEvent) {
	if r == nil || r.store == nil {
		return
	}
	ci := r.clients.FromGRPC(ctx)
	e.ID = uuid.NewString()
	e.CreatedAt = r.now().UTC().Truncate(time.Microsecond)
	e.ClientIP = clientip.String(ci.IP)
	e.UserAgent = ci.UserAgent
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.store.AppendAuditEvent(wctx, e); err != nil {
		r.log.WarnContext(ctx, "audit event not recorded", "action", e.Action, "org_id", e.OrgID,
			"target_id", e.TargetID, "err", err.Error())
	}
}

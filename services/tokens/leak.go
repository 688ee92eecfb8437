package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/throttle"
)

// DefaultLeakReportLimit bounds leak reports per client address: 10 at once,
// then one every 6 s.
var DefaultLeakReportLimit = throttle.Limit{Burst: 10, Interval: 6 * time.Second}

// MaxLeakReport bounds the tokens of one leak report.
const MaxLeakReport = 100

// LeakReportActor is the actor of the audit event a leak revocation writes.
const LeakReportActor = "leak-report"

// leakRevokeTimeout bounds the revocations a report starts.
const leakRevokeTimeout = 10 * time.Second

var errLeakThrottled = fault.New(fault.ResourceExhausted, "too many leak reports from this address; retry later")

// ReportLeaked takes raw tokens found in public and revokes each one that
// is still valid, GitHub-style. It needs no credentials, so it must tell a
// reporter nothing: it answers how many tokens it received, whatever they
// were, and does the same work for every token while the caller waits
// (the format check and, for a well-formed one, one digest lookup in the
// store). The revocations and audit events of valid tokens run after the
// answer, so they add nothing to its timing.
func (s *Service) ReportLeaked(ctx context.Context, secrets []string) (int, error) {
	if len(secrets) > MaxLeakReport {
		return 0, fault.Newf(fault.InvalidArgument, "at most %d tokens per report", MaxLeakReport)
	}
	ip := s.clients.FromGRPC(ctx).IP
	ok, retry, err := s.rates.Take(ctx, "leak:"+throttle.IPKey(ip), s.leakLimit)
	if err != nil {
		return 0, fault.Wrap(fault.Unavailable, err, "leak reports are unavailable, retry shortly").Retry(time.Second)
	}
	if !ok {
		return 0, errLeakThrottled.Retry(max(retry.Round(time.Second), time.Second))
	}
	var found []store.Token
	// Repeats are dropped before any work: a report naming one token 100
	// times costs (and revokes, and audits) one.
	for _, secret := range uniqueStrings(secrets) {
		if len(secret) > s.format.Len() || s.format.Check(secret) != nil {
			continue
		}
		t, err := s.store.GetTokenByDigest(ctx, s.keys.All(secret))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			// Unknown and known tokens must answer alike, so a store failure
			// fails the whole report: the reporter retries it.
			return 0, fault.StoreFailure(err, "look up reported token")
		}
		if !s.keys.Matches(t.PepperID, t.Digest, secret) || StatusAt(t, s.now()) != StatusActive {
			continue
		}
		found = append(found, t)
	}
	if len(found) > 0 {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leakRevokeTimeout)
			defer cancel()
			for _, t := range found {
				s.revokeLeaked(bctx, t)
			}
		}()
	}
	return len(secrets), nil
}

// revokeLeaked revokes a reported token and records who reported it from
// where (the audit recorder reads the reporter's address from ctx).
func (s *Service) revokeLeaked(ctx context.Context, t store.Token) {
	at := s.now().UTC().Truncate(time.Microsecond)
	t.RevokedAt = at
	r, err := s.store.RevokeToken(ctx, t.ID, at,
		events.TokenEvent(events.TokenLeakRevoked, t, at, &events.Actor{System: LeakReportActor}))
	if err != nil {
		s.log.ErrorContext(ctx, "revoking a reported leaked token failed", "token_id", t.ID, "err", err.Error())
		return
	}
	s.revoked(ctx, r, time.Time{})
	s.log.WarnContext(ctx, "token reported leaked and revoked", "token_id", r.ID, "org_id", r.OrgID, "hint", r.Hint)
	s.audit.Record(ctx, store.AuditEvent{OrgID: r.OrgID, ActorEmail: LeakReportActor,
		Action: audit.TokenLeakRevoke, TargetID: r.ID})
}

// uniqueStrings returns ss without repeats, in first-seen order.
func uniqueStrings(ss []string) []string {
	seen := make(map[string]struct{}, len(ss))
	out := ss[:0:0]
	for _, s := range ss {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/store"
)

// Reported is what a token in a verified partner's leak report turned out
// to be.
type Reported int

// What a reported token can be.
const (
	// ReportedNotOurs: not a token of this deployment's format (another
	// prefix, a wrong length or checksum).
	ReportedNotOurs Reported = iota
	// ReportedUnknown: well formed, but no such token exists.
	ReportedUnknown
	// ReportedKnown: a token of this deployment (active or not).
	ReportedKnown
)

// ReportedToken is one reported token's classification; Token is set
// when Kind is ReportedKnown.
type ReportedToken struct {
	Kind  Reported
	Token store.Token
}

// LookupReported classifies the tokens of a verified secret-scanning
// partner's report (GitHub), in order, with one bulk store lookup rather
// than one per token (a report may hold thousands). Unlike ReportLeaked,
// the answer may tell the partner which tokens existed: the partner proved
// who it is by its signature.
func (s *Service) LookupReported(ctx context.Context, secrets []string) ([]ReportedToken, error) {
	out := make([]ReportedToken, len(secrets))
	var digests [][]byte
	owner := make(map[string]int)
	for i, secret := range secrets {
		if len(secret) != s.format.Len() || s.format.Check(secret) != nil {
			continue // ReportedNotOurs
		}
		out[i].Kind = ReportedUnknown
		for _, d := range s.keys.All(secret) {
			digests = append(digests, d)
			owner[string(d)] = i
		}
	}
	if len(digests) == 0 {
		return out, nil
	}
	found, err := s.store.TokensByDigests(ctx, digests)
	if err != nil {
		return nil, err
	}
	for _, t := range found {
		i, ok := owner[string(t.Digest)]
		if ok && s.keys.Matches(t.PepperID, t.Digest, secrets[i]) {
			out[i] = ReportedToken{Kind: ReportedKnown, Token: t}
		}
	}
	return out, nil
}

// RevokeReported processes one recorded partner report: the token is
// revoked (if still usable), dropped from every cache and pushed to
// WatchRevocations streams, and an audit event token.leak_report names the
// partner and where the token was found, for the owner's org admins. A
// report processed twice (a crash after revoking, before it was marked)
// revokes nothing more and writes its audit event again: at least once.
func (s *Service) RevokeReported(ctx context.Context, r store.LeakReport) error {
	t, err := s.store.GetToken(ctx, r.TokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if StatusAt(t, s.now()) == StatusActive {
		at := s.now().UTC().Truncate(time.Microsecond)
		leaked := t
		leaked.RevokedAt = at
		rt, err := s.store.RevokeToken(ctx, t.ID, at,
			events.TokenEvent(events.TokenLeakRevoked, leaked, at, &events.Actor{System: r.Reporter}))
		if err != nil {
			return err
		}
		s.revoked(ctx, rt, time.Time{})
		s.log.WarnContext(ctx, "token reported leaked by a verified partner and revoked", "token_id", rt.ID,
			"org_id", rt.OrgID, "hint", rt.Hint, "reporter", r.Reporter)
	}
	s.audit.Record(ctx, store.AuditEvent{OrgID: t.OrgID, ActorEmail: r.Reporter, Action: audit.TokenLeakReport,
		TargetID: t.ID, SubjectUserID: t.UserID, Details: map[string]string{"url": r.URL, "source": r.Source}})
	return nil
}

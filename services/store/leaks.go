package store

import (
	"context"
	"encoding/json"
	"time"
)

// LeakReport is one keymint token a verified secret-scanning partner
// (GitHub) reported found in public. It is recorded before the partner is
// answered and processed (the token revoked) after, so a crash in between
// loses nothing. It holds no secret: the token by id.
type LeakReport struct {
	ID      string
	TokenID string
	// Reporter names the partner ("github").
	Reporter string
	// URL and Source are where the partner found the token (a commit,
	// issue or gist URL, and GitHub's source type such as "commit").
	URL    string
	Source string
	// ReceivedAt is when the report came in; zero means now.
	ReceivedAt time.Time
	// ProcessedAt is zero until the report is processed.
	ProcessedAt time.Time
}

// LeakReports is the durable queue of verified leak reports, and the bulk
// lookup that classifies a report's tokens.
type LeakReports interface {
	// TokensByDigests returns the tokens whose digest is among digests, in
	// no particular order; digests no token has are skipped. Any number of
	// digests: backends query them in chunks.
	TokensByDigests(ctx context.Context, digests [][]byte) ([]Token, error)
	// RecordLeakReports inserts reports in one transaction: all or none.
	// ErrAlreadyExists on a duplicate id.
	RecordLeakReports(ctx context.Context, reports []LeakReport) error
	// PendingLeakReports returns up to limit unprocessed reports, oldest
	// first.
	PendingLeakReports(ctx context.Context, limit int) ([]LeakReport, error)
	// MarkLeakReportsProcessed sets processed_at to at on the reports with
	// these ids that are still unprocessed; unknown ids are skipped.
	MarkLeakReportsProcessed(ctx context.Context, ids []string, at time.Time) error
}

// EncodeDetails is an audit event's details as stored: a JSON object of
// strings ("{}" for none).
func EncodeDetails(d map[string]string) string {
	if len(d) == 0 {
		return "{}"
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// DecodeDetails reads what EncodeDetails wrote; nil for none (or for a
// value it cannot read: details never fail a listing).
func DecodeDetails(s string) map[string]string {
	var d map[string]string
	if json.Unmarshal([]byte(s), &d) != nil || len(d) == 0 {
		return nil
	}
	return d
}

func (t *timeoutStore) TokensByDigests(ctx context.Context, digests [][]byte) ([]Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.TokensByDigests(ctx, digests)
}

func (t *timeoutStore) RecordLeakReports(ctx context.Context, reports []LeakReport) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RecordLeakReports(ctx, reports)
}

func (t *timeoutStore) PendingLeakReports(ctx context.Context, limit int) ([]LeakReport, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.PendingLeakReports(ctx, limit)
}

func (t *timeoutStore) MarkLeakReportsProcessed(ctx context.Context, ids []string, at time.Time) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.MarkLeakReportsProcessed(ctx, ids, at)
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
)

// RecordLeakReports inserts reports in one transaction (one batch).
func (s *Store) RecordLeakReports(ctx context.Context, reports []store.LeakReport) error {
	if len(reports) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record leak reports: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	b := &pgx.Batch{}
	for _, r := range reports {
		b.Queue(`INSERT INTO leak_reports (id, token_id, reporter, url, source, received_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, r.TokenID, r.Reporter, r.URL, r.Source, orNow(r.ReceivedAt))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record leak reports: %w", mapErr(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record leak reports: %w", mapErr(err))
	}
	return nil
}

// PendingLeakReports returns up to limit unprocessed reports, oldest first.
func (s *Store) PendingLeakReports(ctx context.Context, limit int) ([]store.LeakReport, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT id, token_id, reporter, url, source, received_at FROM leak_reports
		 WHERE processed_at IS NULL ORDER BY received_at, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending leak reports: %w", err)
	}
	defer rows.Close()
	var out []store.LeakReport
	for rows.Next() {
		var r store.LeakReport
		if err := rows.Scan(&r.ID, &r.TokenID, &r.Reporter, &r.URL, &r.Source, &r.ReceivedAt); err != nil {
			return nil, fmt.Errorf("pending leak reports: %w", err)
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending leak reports: %w", err)
	}
	return out, nil
}

// MarkLeakReportsProcessed sets processed_at on the still unprocessed
// reports among ids.
func (s *Store) MarkLeakReportsProcessed(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx,
		`UPDATE leak_reports SET processed_at = $1 WHERE processed_at IS NULL AND id = ANY($2::text[])`,
		orNow(at), ids)
	if err != nil {
		return fmt.Errorf("mark leak reports processed: %w", mapErr(err))
	}
	return nil
}

// digestChunk is how many digests one lookup query sends.
const digestChunk = 1000

// TokensByDigests returns the tokens whose digest is among digests.
func (s *Store) TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error) {
	var out []store.Token
	for start := 0; start < len(digests); start += digestChunk {
		chunk := digests[start:min(start+digestChunk, len(digests))]
		rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE digest = ANY($1)`, chunk)
		if err != nil {
			return nil, fmt.Errorf("tokens by digests: %w", err)
		}
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("tokens by digests: %w", err)
			}
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("tokens by digests: %w", err)
		}
	}
	return out, nil
}

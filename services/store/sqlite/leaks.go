package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keymint/keymint/services/store"
)

// RecordLeakReports inserts reports in one transaction.
func (s *Store) RecordLeakReports(ctx context.Context, reports []store.LeakReport) error {
	if len(reports) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record leak reports: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO leak_reports (id, token_id, reporter, url, source, received_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("record leak reports: %w", err)
	}
	defer stmt.Close()
	for _, r := range reports {
		if _, err := stmt.ExecContext(ctx, r.ID, r.TokenID, r.Reporter, r.URL, r.Source, orNow(r.ReceivedAt).UnixMicro()); err != nil {
			return fmt.Errorf("record leak report %s: %w", r.ID, mapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record leak reports: %w", mapErr(err))
	}
	return nil
}

// PendingLeakReports returns up to limit unprocessed reports, oldest first.
func (s *Store) PendingLeakReports(ctx context.Context, limit int) ([]store.LeakReport, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT id, token_id, reporter, url, source, received_at FROM leak_reports
		 WHERE processed_at IS NULL ORDER BY received_at, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending leak reports: %w", err)
	}
	defer rows.Close()
	var out []store.LeakReport
	for rows.Next() {
		var (
			r        store.LeakReport
			received int64
		)
		if err := rows.Scan(&r.ID, &r.TokenID, &r.Reporter, &r.URL, &r.Source, &received); err != nil {
			return nil, fmt.Errorf("pending leak reports: %w", err)
		}
		r.ReceivedAt = time.UnixMicro(received).UTC()
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
	args := make([]any, 0, len(ids)+1)
	args = append(args, orNow(at).UnixMicro())
	for _, id := range ids {
		args = append(args, id)
	}
	q := `UPDATE leak_reports SET processed_at = ? WHERE processed_at IS NULL AND id IN (?` +
		strings.Repeat(", ?", len(ids)-1) + `)`
	if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mark leak reports processed: %w", mapErr(err))
	}
	return nil
}

// digestChunk is how many digests one lookup query binds (SQLite allows
// 32766 variables; smaller statements keep each query short).
const digestChunk = 500

// TokensByDigests returns the tokens whose digest is among digests.
func (s *Store) TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error) {
	var out []store.Token
	for start := 0; start < len(digests); start += digestChunk {
		chunk := digests[start:min(start+digestChunk, len(digests))]
		args := make([]any, len(chunk))
		for i, d := range chunk {
			args[i] = d
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE digest IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
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
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("tokens by digests: %w", err)
		}
	}
	return out, nil
}

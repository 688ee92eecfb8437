package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keymint/keymint/services/store"
)

// appendRevocation writes one log row in tx and returns its sequence. The
// single writer connection commits sequences in order.
func appendRevocation(ctx context.Context, tx *sql.Tx, t store.Token, reason string, at, notAfter time.Time) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO revocations (token_id, digest, reason, revoked_at, not_after)
		 VALUES (?, ?, ?, ?, ?) RETURNING seq`,
		t.ID, t.Digest, reason, at.UnixMicro(), micros(notAfter)).Scan(&seq)
	return seq, mapErr(err)
}

// RevokeToken sets revoked_at unless set already; the first revocation
// appends a log row and its outbox events in the same transaction.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, mapErr(err))
	}
	defer func() { _ = tx.Rollback() }()
	at = orNow(at)
	t, err := scanToken(tx.QueryRowContext(ctx,
		`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING `+tokenColumns,
		at.UnixMicro(), id))
	if errors.Is(err, store.ErrNotFound) {
		// Unknown, or revoked already (a no-op that returns it).
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
		if err != nil {
			return store.Token{}, fmt.Errorf("revoke token %s: %w", id, err)
		}
		return t, nil
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if t.RevocationSeq, err = appendRevocation(ctx, tx, t, store.RevocationRevoked, at, time.Time{}); err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: log: %w", id, err)
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, mapErr(err))
	}
	return t, nil
}

// RevocationLogBounds returns the oldest and newest sequence kept.
func (s *Store) RevocationLogBounds(ctx context.Context) (int64, int64, error) {
	var oldest, head int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM revocations`).Scan(&oldest, &head)
	if err != nil {
		return 0, 0, fmt.Errorf("revocation log bounds: %w", mapErr(err))
	}
	return oldest, head, nil
}

// ListRevocations returns up to limit rows after seq after, in order.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.RevocationRecord, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT seq, token_id, digest, reason, revoked_at, not_after FROM revocations
		 WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.RevocationRecord
	for rows.Next() {
		var r store.RevocationRecord
		var at int64
		var notAfter sql.NullInt64
		if err := rows.Scan(&r.Seq, &r.TokenID, &r.Digest, &r.Reason, &at, &notAfter); err != nil {
			return nil, fmt.Errorf("list revocations: %w", mapErr(err))
		}
		r.At, r.NotAfter = time.UnixMicro(at).UTC(), fromMicros(notAfter)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", mapErr(err))
	}
	return out, nil
}

// PruneRevocations deletes rows older than before, keeping the newest.
func (s *Store) PruneRevocations(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx,
		`DELETE FROM revocations WHERE revoked_at < ? AND seq < (SELECT MAX(seq) FROM revocations)`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

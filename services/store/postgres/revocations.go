package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
)

// revocationLogLock is the advisory lock every revocation log writer takes,
// for its transaction, before it inserts: a bigserial is handed out at
// insert time but becomes visible at commit, so without the lock seq 6 could
// commit before seq 5 and a reader that read "after 4" and saw 6 would never
// see 5. Revocations are rare; serializing them costs nothing that matters.
const revocationLogLock = 0x6b6d7265766f6b65 // "kmrevoke"

// appendRevocation writes one log row in tx and returns its sequence.
func appendRevocation(ctx context.Context, tx pgx.Tx, t store.Token, reason string, at, notAfter time.Time) (int64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(revocationLogLock)); err != nil {
		return 0, mapErr(err)
	}
	var seq int64
	err := tx.QueryRow(ctx,
		`INSERT INTO revocations (token_id, digest, reason, revoked_at, not_after)
		 VALUES ($1, $2, $3, $4, $5) RETURNING seq`,
		t.ID, t.Digest, reason, at.UTC(), nullTime(notAfter)).Scan(&seq)
	return seq, mapErr(err)
}

// RevokeToken sets revoked_at unless set already; the first revocation
// appends a log row and its outbox events in the same transaction.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, mapErr(err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	at = orNow(at)
	t, err := scanToken(tx.QueryRow(ctx,
		`UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING `+tokenColumns, id, at))
	if errors.Is(err, store.ErrNotFound) {
		// Unknown, or revoked already (a no-op that returns it).
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
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
	if err := tx.Commit(ctx); err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, mapErr(err))
	}
	return t, nil
}

// RevocationLogBounds returns the oldest and newest sequence kept.
func (s *Store) RevocationLogBounds(ctx context.Context) (int64, int64, error) {
	var oldest, head int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM revocations`).Scan(&oldest, &head)
	if err != nil {
		return 0, 0, fmt.Errorf("revocation log bounds: %w", mapErr(err))
	}
	return oldest, head, nil
}

// ListRevocations returns up to limit rows after seq after, in order.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.RevocationRecord, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT seq, token_id, digest, reason, revoked_at, not_after FROM revocations
		 WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.RevocationRecord
	for rows.Next() {
		var r store.RevocationRecord
		var notAfter *time.Time
		if err := rows.Scan(&r.Seq, &r.TokenID, &r.Digest, &r.Reason, &r.At, &notAfter); err != nil {
			return nil, fmt.Errorf("list revocations: %w", mapErr(err))
		}
		r.At, r.NotAfter = r.At.UTC(), fromNull(notAfter)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", mapErr(err))
	}
	return out, nil
}

// PruneRevocations deletes rows older than before, keeping the newest.
func (s *Store) PruneRevocations(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx,
		`DELETE FROM revocations WHERE revoked_at < $1 AND seq < (SELECT MAX(seq) FROM revocations)`, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

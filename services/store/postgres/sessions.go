package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keymint/keymint/services/store"
)

const sessionColumns = `id, user_id, hash, created_at, last_seen_at, expires_at`

// CreateSession inserts a session; ErrAlreadyExists if its id or hash is taken.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	created := orNow(ss.CreatedAt)
	seen := ss.LastSeenAt
	if seen.IsZero() {
		seen = created
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		ss.ID, ss.UserID, ss.Hash, created, seen.UTC(), ss.ExpiresAt.UTC())
	if err != nil {
		return fmt.Errorf("create session %s: %w", ss.ID, mapErr(err))
	}
	return nil
}

// GetSessionByHash returns the session with this hash.
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	var ss store.Session
	err := s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE hash = $1`, hash).
		Scan(&ss.ID, &ss.UserID, &ss.Hash, &ss.CreatedAt, &ss.LastSeenAt, &ss.ExpiresAt)
	if err != nil {
		return store.Session{}, fmt.Errorf("get session by hash: %w", mapErr(err))
	}
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = ss.CreatedAt.UTC(), ss.LastSeenAt.UTC(), ss.ExpiresAt.UTC()
	return ss, nil
}

// TouchSession raises last_seen_at to at, never lowering it.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $1`, id, at.UTC())
	if err != nil {
		return fmt.Errorf("touch session %s: %w", id, err)
	}
	return affectedOne(tag, "touch session "+id)
}

// DeleteSession deletes one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return affectedOne(tag, "delete session "+id)
}

// DeleteUserSessions deletes a user's sessions except exceptID.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id <> $2`, userID, exceptID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of user %s: %w", userID, err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteExpiredSessions deletes sessions past either expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBy, idleSince time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2`,
		expiredBy.UTC(), idleSince.UTC())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// affectedOne turns "no row changed" into ErrNotFound.
func affectedOne(tag pgconn.CommandTag, what string) error {
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

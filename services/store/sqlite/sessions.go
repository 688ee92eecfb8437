package sqlite

import (
	"context"
	"fmt"
	"time"

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
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.UserID, ss.Hash, created.UnixMicro(), seen.UnixMicro(), ss.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("create session %s: %w", ss.ID, mapErr(err))
	}
	return nil
}

// GetSessionByHash returns the session with this hash.
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	var (
		ss                     store.Session
		created, seen, expires int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE hash = ?`, hash).
		Scan(&ss.ID, &ss.UserID, &ss.Hash, &created, &seen, &expires)
	if err != nil {
		return store.Session{}, fmt.Errorf("get session by hash: %w", mapErr(err))
	}
	ss.CreatedAt = time.UnixMicro(created).UTC()
	ss.LastSeenAt = time.UnixMicro(seen).UTC()
	ss.ExpiresAt = time.UnixMicro(expires).UTC()
	return ss, nil
}

// TouchSession raises last_seen_at to at, never lowering it.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id = ?`, at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("touch session %s: %w", id, err)
	}
	return affectedOne(res, "touch session "+id)
}

// DeleteSession deletes one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return affectedOne(res, "delete session "+id)
}

// DeleteUserSessions deletes a user's sessions except exceptID.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id <> ?`, userID, exceptID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of user %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete sessions of user %s: %w", userID, err)
	}
	return int(n), nil
}

// DeleteExpiredSessions deletes sessions past either expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBy, idleSince time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?`,
		expiredBy.UnixMicro(), idleSince.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}

// affectedOne turns "no row changed" into ErrNotFound.
func affectedOne(res interface{ RowsAffected() (int64, error) }, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

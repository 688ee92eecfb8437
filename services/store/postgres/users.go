package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
)

const userColumns = `id, org_id, email, password_hash, admin, created_at, scopes,
	kind, name, description, created_by, disabled_at, deleted_at`

// CreateUser inserts u; ErrAlreadyExists if its id or email is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		u.ID, u.OrgID, u.Email, u.PasswordHash, u.Admin, orNow(u.CreatedAt), nonNil(u.Scopes),
		ownerKind(u.Kind), u.Name, u.Description, u.CreatedBy, nullTime(u.DisabledAt), nullTime(u.DeletedAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, mapErr(err))
	}
	return nil
}

// GetUser returns a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns the user with exactly this email; callers normalize.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	if err != nil {
		// The email stays out of the message: it is personal data that ends up in logs.
		return store.User{}, fmt.Errorf("get user by email: %w", err)
	}
	return u, nil
}

// UpdatePasswordHash replaces a user's password hash, with events in the
// same transaction.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string, events ...store.Event) error {
	return s.inTx(ctx, "update password hash of user "+userID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, userID, hash)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, events)
	})
}

// UpdateUserScopes replaces the scopes a user holds.
func (s *Store) UpdateUserScopes(ctx context.Context, userID string, scopes []string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET scopes = $2 WHERE id = $1`, userID, nonNil(scopes))
	if err != nil {
		return fmt.Errorf("update scopes of user %s: %w", userID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update scopes of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

func scanUser(row pgx.Row) (store.User, error) {
	var (
		u                 store.User
		disabled, deleted *time.Time
	)
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &u.Admin, &u.CreatedAt, &u.Scopes,
		&u.Kind, &u.Name, &u.Description, &u.CreatedBy, &disabled, &deleted); err != nil {
		return store.User{}, mapErr(err)
	}
	if len(u.Scopes) == 0 {
		u.Scopes = nil
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.DisabledAt, u.DeletedAt = fromNull(disabled), fromNull(deleted)
	return u, nil
}

// ListUsers returns one page of one organization's live users of a kind:
// people by email, service accounts by name, then id (bytewise: the
// columns compared are COLLATE "C").
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	if f.OrgID == "" {
		return nil, fmt.Errorf("list users: %w", errNoOrg)
	}
	kind, key := ownerKind(f.Kind), `email COLLATE "C"`
	if kind == store.KindServiceAccount {
		key = `name COLLATE "C"`
	}
	var q query
	where := `org_id = ` + q.arg(f.OrgID) + ` AND kind = ` + q.arg(kind) + ` AND deleted_at IS NULL`
	if f.EmailPrefix != "" {
		// left(), not LIKE: a prefix holding % or _ means itself.
		where += ` AND left(email, ` + q.arg(len([]rune(f.EmailPrefix))) + `) = ` + q.arg(f.EmailPrefix)
	}
	if f.AfterID != "" {
		var after string
		err := s.pool.QueryRow(ctx, `SELECT `+key+` FROM users WHERE id = $1 AND org_id = $2 AND kind = $3 AND deleted_at IS NULL`,
			f.AfterID, f.OrgID, kind).Scan(&after)
		if err != nil {
			return nil, fmt.Errorf("list users after %s: %w", f.AfterID, mapErr(err))
		}
		a := q.arg(after)
		where += ` AND (` + key + ` > ` + a + ` OR (` + key + ` = ` + a + ` AND id > ` + q.arg(f.AfterID) + `))`
	}
	sql := `SELECT ` + userColumns + ` FROM users WHERE ` + where + ` ORDER BY ` + key + `, id`
	if f.Limit > 0 {
		sql += ` LIMIT ` + q.arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", mapErr(err))
	}
	return out, nil
}

// SetUserAdmin sets or clears a live user's admin flag.
func (s *Store) SetUserAdmin(ctx context.Context, userID string, admin bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET admin = $2 WHERE id = $1 AND deleted_at IS NULL`, userID, admin)
	if err != nil {
		return fmt.Errorf("set admin of user %s: %w", userID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set admin of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

// DisableUser disables a live user and revokes its tokens in one
// transaction. The user row is updated (locked) first; CreateToken and
// RotateToken lock it FOR SHARE, so none commits a token this misses.
func (s *Store) DisableUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error) {
	at = orNow(at)
	var out store.Removed
	err := s.inTx(ctx, "disable user "+userID, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx,
			`SELECT `+userColumns+` FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, userID))
		if err != nil {
			return err
		}
		if !u.DisabledAt.IsZero() {
			out.User = u
			return nil
		}
		if u, err = scanUser(tx.QueryRow(ctx,
			`UPDATE users SET disabled_at = $2 WHERE id = $1 RETURNING `+userColumns, userID, at.UTC())); err != nil {
			return err
		}
		if out, err = removeOwner(ctx, tx, u, store.RevokeReasonOwnerDisabled, store.RevocationOwnerDisabled, at); err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
	if err != nil {
		return store.Removed{}, err
	}
	return out, nil
}

// removeOwner revokes every unrevoked token of u, one log row each (in
// token id order), and deletes u's sessions.
func removeOwner(ctx context.Context, tx pgx.Tx, u store.User, tokenReason, logReason string, at time.Time) (store.Removed, error) {
	out := store.Removed{User: u, Changed: true}
	rows, err := tx.Query(ctx,
		`UPDATE tokens SET revoked_at = $2, revoke_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL RETURNING `+tokenColumns,
		u.ID, at.UTC(), tokenReason)
	if err != nil {
		return store.Removed{}, mapErr(err)
	}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			rows.Close()
			return store.Removed{}, err
		}
		out.Revoked = append(out.Revoked, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.Removed{}, mapErr(err)
	}
	slices.SortFunc(out.Revoked, func(a, b store.Token) int { return strings.Compare(a.ID, b.ID) })
	for i := range out.Revoked {
		if out.Revoked[i].RevocationSeq, err = appendRevocation(ctx, tx, out.Revoked[i], logReason, at, time.Time{}); err != nil {
			return store.Removed{}, err
		}
	}
	tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, u.ID)
	if err != nil {
		return store.Removed{}, mapErr(err)
	}
	out.EndedSessions = int(tag.RowsAffected())
	return out, nil
}

// EnableUser clears a live user's disabled_at.
func (s *Store) EnableUser(ctx context.Context, userID string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`UPDATE users SET disabled_at = NULL WHERE id = $1 AND deleted_at IS NULL RETURNING `+userColumns, userID))
	if err != nil {
		return store.User{}, fmt.Errorf("enable user %s: %w", userID, err)
	}
	return u, nil
}

// DeleteUser deletes a live user: tombstoned email, no password, tokens
// revoked, sessions ended, in one transaction.
func (s *Store) DeleteUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error) {
	at = orNow(at)
	var out store.Removed
	err := s.inTx(ctx, "delete user "+userID, func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx,
			`UPDATE users SET deleted_at = $2, email = $3, password_hash = '', reset_hash = NULL, reset_expires_at = NULL
			 WHERE id = $1 AND deleted_at IS NULL RETURNING `+userColumns,
			userID, at.UTC(), store.DeletedEmail(userID)))
		if err != nil {
			return err
		}
		if out, err = removeOwner(ctx, tx, u, store.RevokeReasonOwnerDeleted, store.RevocationOwnerDeleted, at); err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
	if err != nil {
		return store.Removed{}, err
	}
	return out, nil
}

// SetPasswordReset stores a reset code's hash for a live person.
func (s *Store) SetPasswordReset(ctx context.Context, userID string, codeHash []byte, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE users SET reset_hash = $2, reset_expires_at = $3 WHERE id = $1 AND kind = 'user' AND deleted_at IS NULL`,
		userID, codeHash, expiresAt.UTC())
	if err != nil {
		return fmt.Errorf("set password reset of user %s: %w", userID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set password reset of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

// RedeemPasswordReset uses up a matching, unexpired reset code.
func (s *Store) RedeemPasswordReset(ctx context.Context, userID string, codeHash []byte, now time.Time, passwordHash string, events ...store.Event) (int, error) {
	var ended int
	err := s.inTx(ctx, "redeem password reset of user "+userID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE users SET password_hash = $2, reset_hash = NULL, reset_expires_at = NULL
			 WHERE id = $1 AND reset_hash = $3 AND reset_expires_at > $4 AND disabled_at IS NULL AND deleted_at IS NULL`,
			userID, passwordHash, codeHash, now.UTC())
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if tag, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID); err != nil {
			return mapErr(err)
		}
		ended = int(tag.RowsAffected())
		return insertEvents(ctx, tx, events)
	})
	return ended, err
}

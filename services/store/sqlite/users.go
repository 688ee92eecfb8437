package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keymint/keymint/services/store"
)

const userColumns = `id, org_id, email, password_hash, admin, created_at, scopes,
	kind, name, description, created_by, disabled_at, deleted_at`

// CreateUser inserts u; ErrAlreadyExists if its id or email is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	sc, err := jsonList(u.Scopes)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.OrgID, u.Email, u.PasswordHash, u.Admin, orNow(u.CreatedAt).UnixMicro(), sc,
		ownerKind(u.Kind), u.Name, u.Description, u.CreatedBy, micros(u.DisabledAt), micros(u.DeletedAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, mapErr(err))
	}
	return nil
}

// GetUser returns a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns the user with exactly this email; callers normalize.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	if err != nil {
		// The email stays out of the message: it is personal data that ends up in logs.
		return store.User{}, fmt.Errorf("get user by email: %w", err)
	}
	return u, nil
}

// UpdatePasswordHash replaces a user's password hash, with events in the
// same transaction.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string, events ...store.Event) error {
	return s.inTx(ctx, "update password hash of user "+userID, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return insertEvents(ctx, tx, events)
	})
}

// UpdateUserScopes replaces the scopes a user holds.
func (s *Store) UpdateUserScopes(ctx context.Context, userID string, scopes []string) error {
	sc, err := jsonList(scopes)
	if err != nil {
		return fmt.Errorf("update scopes of user %s: %w", userID, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE users SET scopes = ? WHERE id = ?`, sc, userID)
	if err != nil {
		return fmt.Errorf("update scopes of user %s: %w", userID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update scopes of user %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("update scopes of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

func scanUser(row scanner) (store.User, error) {
	var (
		u                          store.User
		created, disabled, deleted sql.NullInt64
		scopes                     string
	)
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &u.Admin, &created, &scopes,
		&u.Kind, &u.Name, &u.Description, &u.CreatedBy, &disabled, &deleted); err != nil {
		return store.User{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(scopes), &u.Scopes); err != nil {
		return store.User{}, fmt.Errorf("decode scopes of user %s: %w", u.ID, err)
	}
	if len(u.Scopes) == 0 {
		u.Scopes = nil
	}
	u.CreatedAt = fromMicros(created)
	u.DisabledAt, u.DeletedAt = fromMicros(disabled), fromMicros(deleted)
	return u, nil
}

// ListUsers returns one page of one organization's live users of a kind:
// people by email, service accounts by name, then id.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	if f.OrgID == "" {
		return nil, fmt.Errorf("list users: %w", errNoOrg)
	}
	kind, key := ownerKind(f.Kind), "email"
	if kind == store.KindServiceAccount {
		key = "name"
	}
	where := `org_id = ? AND kind = ? AND deleted_at IS NULL`
	args := []any{f.OrgID, kind}
	if f.EmailPrefix != "" {
		// substr, not LIKE: a prefix holding % or _ means itself.
		where += ` AND substr(email, 1, ?) = ?`
		args = append(args, utf8.RuneCountInString(f.EmailPrefix), f.EmailPrefix)
	}
	if f.AfterID != "" {
		var after string
		err := s.r.QueryRowContext(ctx, `SELECT `+key+` FROM users WHERE id = ? AND org_id = ? AND kind = ? AND deleted_at IS NULL`,
			f.AfterID, f.OrgID, kind).Scan(&after)
		if err != nil {
			return nil, fmt.Errorf("list users after %s: %w", f.AfterID, mapErr(err))
		}
		where += ` AND (` + key + ` > ? OR (` + key + ` = ? AND id > ?))`
		args = append(args, after, after, f.AfterID)
	}
	q := `SELECT ` + userColumns + ` FROM users WHERE ` + where + ` ORDER BY ` + key + `, id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
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
	res, err := s.w.ExecContext(ctx, `UPDATE users SET admin = ? WHERE id = ? AND deleted_at IS NULL`, admin, userID)
	if err != nil {
		return fmt.Errorf("set admin of user %s: %w", userID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set admin of user %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("set admin of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

// DisableUser disables a live user and revokes its tokens, in one
// transaction of the single writer (so no CreateToken lands in between).
func (s *Store) DisableUser(ctx context.Context, userID string, at time.Time, events ...store.Event) (store.Removed, error) {
	at = orNow(at)
	var out store.Removed
	err := s.inTx(ctx, "disable user "+userID, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ? AND deleted_at IS NULL`, userID))
		if err != nil {
			return err
		}
		if !u.DisabledAt.IsZero() {
			out.User = u
			return nil
		}
		u, err = scanUser(tx.QueryRowContext(ctx,
			`UPDATE users SET disabled_at = ? WHERE id = ? RETURNING `+userColumns, at.UnixMicro(), userID))
		if err != nil {
			return err
		}
		out, err = removeOwner(ctx, tx, u, store.RevokeReasonOwnerDisabled, store.RevocationOwnerDisabled, at)
		if err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
	if err != nil {
		return store.Removed{}, err
	}
	return out, nil
}

// removeOwner revokes every unrevoked token of u, one log row each, and
// deletes u's sessions.
func removeOwner(ctx context.Context, tx *sql.Tx, u store.User, tokenReason, logReason string, at time.Time) (store.Removed, error) {
	out := store.Removed{User: u, Changed: true}
	rows, err := tx.QueryContext(ctx,
		`UPDATE tokens SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL RETURNING `+tokenColumns,
		at.UnixMicro(), tokenReason, u.ID)
	if err != nil {
		return store.Removed{}, mapErr(err)
	}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			_ = rows.Close()
			return store.Removed{}, err
		}
		out.Revoked = append(out.Revoked, t)
	}
	if err := rows.Close(); err != nil {
		return store.Removed{}, mapErr(err)
	}
	if err := rows.Err(); err != nil {
		return store.Removed{}, mapErr(err)
	}
	// Log rows in token id order, so the sequence does not depend on the
	// order RETURNING happened to produce.
	slices.SortFunc(out.Revoked, func(a, b store.Token) int { return strings.Compare(a.ID, b.ID) })
	for i := range out.Revoked {
		if out.Revoked[i].RevocationSeq, err = appendRevocation(ctx, tx, out.Revoked[i], logReason, at, time.Time{}); err != nil {
			return store.Removed{}, err
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, u.ID)
	if err != nil {
		return store.Removed{}, mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Removed{}, err
	}
	out.EndedSessions = int(n)
	return out, nil
}

// EnableUser clears a live user's disabled_at.
func (s *Store) EnableUser(ctx context.Context, userID string) (store.User, error) {
	u, err := scanUser(s.w.QueryRowContext(ctx,
		`UPDATE users SET disabled_at = NULL WHERE id = ? AND deleted_at IS NULL RETURNING `+userColumns, userID))
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
	err := s.inTx(ctx, "delete user "+userID, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx,
			`UPDATE users SET deleted_at = ?, email = ?, password_hash = '', reset_hash = NULL, reset_expires_at = NULL
			 WHERE id = ? AND deleted_at IS NULL RETURNING `+userColumns,
			at.UnixMicro(), store.DeletedEmail(userID), userID))
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
	res, err := s.w.ExecContext(ctx,
		`UPDATE users SET reset_hash = ?, reset_expires_at = ? WHERE id = ? AND kind = 'user' AND deleted_at IS NULL`,
		codeHash, expiresAt.UnixMicro(), userID)
	if err != nil {
		return fmt.Errorf("set password reset of user %s: %w", userID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set password reset of user %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("set password reset of user %s: %w", userID, store.ErrNotFound)
	}
	return nil
}

// RedeemPasswordReset uses up a matching, unexpired reset code.
func (s *Store) RedeemPasswordReset(ctx context.Context, userID string, codeHash []byte, now time.Time, passwordHash string, events ...store.Event) (int, error) {
	var ended int
	err := s.inTx(ctx, "redeem password reset of user "+userID, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE users SET password_hash = ?, reset_hash = NULL, reset_expires_at = NULL
			 WHERE id = ? AND reset_hash = ? AND reset_expires_at > ? AND disabled_at IS NULL AND deleted_at IS NULL`,
			passwordHash, userID, codeHash, now.UnixMicro())
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID); err != nil {
			return mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		ended = int(n)
		return insertEvents(ctx, tx, events)
	})
	return ended, err
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/keymint/keymint/services/store"
)

const userColumns = `id, org_id, email, password_hash, admin, created_at, scopes`

// CreateUser inserts u; ErrAlreadyExists if its id or email is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	sc, err := jsonList(u.Scopes)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.OrgID, u.Email, u.PasswordHash, u.Admin, orNow(u.CreatedAt).UnixMicro(), sc)
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

func scanUser(row *sql.Row) (store.User, error) {
	var (
		u       store.User
		created sql.NullInt64
		scopes  string
	)
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &u.Admin, &created, &scopes); err != nil {
		return store.User{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(scopes), &u.Scopes); err != nil {
		return store.User{}, fmt.Errorf("decode scopes of user %s: %w", u.ID, err)
	}
	if len(u.Scopes) == 0 {
		u.Scopes = nil
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

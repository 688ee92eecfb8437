package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
)

const userColumns = `id, org_id, email, password_hash, admin, created_at, scopes`

// CreateUser inserts u; ErrAlreadyExists if its id or email is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.OrgID, u.Email, u.PasswordHash, u.Admin, orNow(u.CreatedAt), nonNil(u.Scopes))
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
	var u store.User
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &u.Admin, &u.CreatedAt, &u.Scopes); err != nil {
		return store.User{}, mapErr(err)
	}
	if len(u.Scopes) == 0 {
		u.Scopes = nil
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

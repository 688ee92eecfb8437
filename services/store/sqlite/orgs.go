package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// EnsureOrg returns the organization named name, creating it if missing.
func (s *Store) EnsureOrg(ctx context.Context, name string) (store.Org, error) {
	// Insert-or-nothing, then read: whichever caller's insert wins, every
	// caller reads the same committed row.
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)
		 ON CONFLICT (name) DO NOTHING`,
		uuid.NewString(), name, time.Now().UnixMicro())
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, mapErr(err))
	}
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM organizations WHERE name = ?`, name))
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, err)
	}
	return o, nil
}

// GetOrg returns an organization by id.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM organizations WHERE id = ?`, id))
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	return o, nil
}

func scanOrg(row *sql.Row) (store.Org, error) {
	var (
		o       store.Org
		created sql.NullInt64
	)
	if err := row.Scan(&o.ID, &o.Name, &created); err != nil {
		return store.Org{}, mapErr(err)
	}
	o.CreatedAt = fromMicros(created)
	return o, nil
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// EnsureOrg returns the organization named name, creating it if missing.
func (s *Store) EnsureOrg(ctx context.Context, name string) (store.Org, error) {
	// Two statements, not one: under READ COMMITTED each gets a fresh
	// snapshot, so when a concurrent insert wins the conflict the SELECT sees
	// its row. A single INSERT ... RETURNING UNION SELECT would not.
	_, err := s.pool.Exec(ctx,
		`INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)
		 ON CONFLICT (name) DO NOTHING`,
		uuid.NewString(), name, time.Now().UTC())
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, mapErr(err))
	}
	var o store.Org
	err = s.pool.QueryRow(ctx,
		`SELECT id, name, created_at FROM organizations WHERE name = $1`, name,
	).Scan(&o.ID, &o.Name, &o.CreatedAt)
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, mapErr(err))
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, nil
}

// GetOrg returns an organization by id.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	var o store.Org
	err := s.pool.QueryRow(ctx,
		`SELECT id, name, created_at FROM organizations WHERE id = $1`, id,
	).Scan(&o.ID, &o.Name, &o.CreatedAt)
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, mapErr(err))
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, nil
}

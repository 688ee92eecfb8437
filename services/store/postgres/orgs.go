package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE name = $1`, name))
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, err)
	}
	return o, nil
}

const orgColumns = `id, name, created_at, allowed_scopes, max_token_lifetime_us, default_token_lifetime_us, max_rotation_grace_us,
	expiry_warnings_s`

func scanOrg(row pgx.Row) (store.Org, error) {
	var (
		o                   store.Org
		maxLife, defLife, g int64
		warnings            []int64
	)
	if err := row.Scan(&o.ID, &o.Name, &o.CreatedAt, &o.Policy.AllowedScopes, &maxLife, &defLife, &g, &warnings); err != nil {
		return store.Org{}, mapErr(err)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	if len(o.Policy.AllowedScopes) == 0 {
		o.Policy.AllowedScopes = nil
	}
	o.Policy.MaxTokenLifetime = time.Duration(maxLife) * time.Microsecond
	o.Policy.DefaultTokenLifetime = time.Duration(defLife) * time.Microsecond
	o.Policy.MaxRotationGrace = time.Duration(g) * time.Microsecond
	for _, s := range warnings {
		o.Policy.ExpiryWarnings = append(o.Policy.ExpiryWarnings, time.Duration(s)*time.Second)
	}
	return o, nil
}

// UpdateOrgPolicy replaces an organization's policy.
func (s *Store) UpdateOrgPolicy(ctx context.Context, orgID string, p store.OrgPolicy) (store.Org, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx,
		`UPDATE organizations SET allowed_scopes = $2, max_token_lifetime_us = $3,
		        default_token_lifetime_us = $4, max_rotation_grace_us = $5, expiry_warnings_s = $6
		 WHERE id = $1 RETURNING `+orgColumns,
		orgID, nonNil(p.AllowedScopes), p.MaxTokenLifetime.Microseconds(), p.DefaultTokenLifetime.Microseconds(),
		p.MaxRotationGrace.Microseconds(), seconds(p.ExpiryWarnings)))
	if err != nil {
		return store.Org{}, fmt.Errorf("update policy of org %s: %w", orgID, err)
	}
	return o, nil
}

// GetOrg returns an organization by id.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = $1`, id))
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	return o, nil
}

// seconds encodes durations as whole seconds, never NULL.
func seconds(ds []time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = int64(d / time.Second)
	}
	return out
}

// ListOrgs returns every organization by name.
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orgColumns+` FROM organizations ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orgs: %w", mapErr(err))
	}
	return out, nil
}

// RenameOrg renames an organization; ErrAlreadyExists if the name is taken.
func (s *Store) RenameOrg(ctx context.Context, orgID, name string) (store.Org, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx,
		`UPDATE organizations SET name = $2 WHERE id = $1 RETURNING `+orgColumns, orgID, name))
	if err != nil {
		return store.Org{}, fmt.Errorf("rename org %s: %w", orgID, err)
	}
	return o, nil
}

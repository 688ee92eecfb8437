package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE name = ?`, name))
	if err != nil {
		return store.Org{}, fmt.Errorf("ensure org %q: %w", name, err)
	}
	return o, nil
}

// GetOrg returns an organization by id.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = ?`, id))
	if err != nil {
		return store.Org{}, fmt.Errorf("get org %s: %w", id, err)
	}
	return o, nil
}

const orgColumns = `id, name, created_at, allowed_scopes, max_token_lifetime_us, default_token_lifetime_us, max_rotation_grace_us,
	expiry_warnings_s`

func scanOrg(row scanner) (store.Org, error) {
	var (
		o                   store.Org
		created             sql.NullInt64
		scopes, warnings    string
		maxLife, defLife, g int64
	)
	if err := row.Scan(&o.ID, &o.Name, &created, &scopes, &maxLife, &defLife, &g, &warnings); err != nil {
		return store.Org{}, mapErr(err)
	}
	o.CreatedAt = fromMicros(created)
	if err := json.Unmarshal([]byte(scopes), &o.Policy.AllowedScopes); err != nil {
		return store.Org{}, fmt.Errorf("decode allowed scopes of org %s: %w", o.ID, err)
	}
	if len(o.Policy.AllowedScopes) == 0 {
		o.Policy.AllowedScopes = nil
	}
	o.Policy.MaxTokenLifetime = time.Duration(maxLife) * time.Microsecond
	o.Policy.DefaultTokenLifetime = time.Duration(defLife) * time.Microsecond
	o.Policy.MaxRotationGrace = time.Duration(g) * time.Microsecond
	var secs []int64
	if err := json.Unmarshal([]byte(warnings), &secs); err != nil {
		return store.Org{}, fmt.Errorf("decode expiry warnings of org %s: %w", o.ID, err)
	}
	for _, s := range secs {
		o.Policy.ExpiryWarnings = append(o.Policy.ExpiryWarnings, time.Duration(s)*time.Second)
	}
	return o, nil
}

// UpdateOrgPolicy replaces an organization's policy.
func (s *Store) UpdateOrgPolicy(ctx context.Context, orgID string, p store.OrgPolicy) (store.Org, error) {
	sc, err := jsonList(p.AllowedScopes)
	if err != nil {
		return store.Org{}, fmt.Errorf("update policy of org %s: %w", orgID, err)
	}
	secs := make([]int64, len(p.ExpiryWarnings))
	for i, w := range p.ExpiryWarnings {
		secs[i] = int64(w / time.Second)
	}
	warnings, err := json.Marshal(secs)
	if err != nil {
		return store.Org{}, fmt.Errorf("update policy of org %s: %w", orgID, err)
	}
	o, err := scanOrg(s.w.QueryRowContext(ctx,
		`UPDATE organizations SET allowed_scopes = ?, max_token_lifetime_us = ?,
		        default_token_lifetime_us = ?, max_rotation_grace_us = ?, expiry_warnings_s = ?
		 WHERE id = ? RETURNING `+orgColumns,
		sc, p.MaxTokenLifetime.Microseconds(), p.DefaultTokenLifetime.Microseconds(), p.MaxRotationGrace.Microseconds(),
		string(warnings), orgID))
	if err != nil {
		return store.Org{}, fmt.Errorf("update policy of org %s: %w", orgID, err)
	}
	return o, nil
}

// ListOrgs returns every organization by name.
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+orgColumns+` FROM organizations ORDER BY name`)
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
	o, err := scanOrg(s.w.QueryRowContext(ctx,
		`UPDATE organizations SET name = ? WHERE id = ? RETURNING `+orgColumns, name, orgID))
	if err != nil {
		return store.Org{}, fmt.Errorf("rename org %s: %w", orgID, err)
	}
	return o, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keymint/keymint/services/store"
)

const tokenColumns = `id, org_id, user_id, name, description, hint, digest, pepper_id, scopes,
	created_by, created_at, expires_at, last_used_at, revoked_at`

// errNoOrg rejects an unscoped ListTokens: a missing tenant must not mean "all tenants".
var errNoOrg = errors.New("token filter has no org id")

// CreateToken inserts t; ErrAlreadyExists if its id or digest is taken.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{} // "[]", not "null"
	}
	sc, err := json.Marshal(scopes)
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrgID, t.UserID, t.Name, t.Description, t.Hint, t.Digest, t.PepperID, string(sc),
		t.CreatedBy, orNow(t.CreatedAt).UnixMicro(), micros(t.ExpiresAt), micros(t.LastUsedAt), micros(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, mapErr(err))
	}
	return nil
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if err != nil {
		return store.Token{}, fmt.Errorf("get token %s: %w", id, err)
	}
	return t, nil
}

// GetTokenByDigest returns the token whose digest is any of digests.
func (s *Store) GetTokenByDigest(ctx context.Context, digests [][]byte) (store.Token, error) {
	if len(digests) == 0 {
		return store.Token{}, fmt.Errorf("get token by digest: %w", store.ErrNotFound)
	}
	args := make([]any, len(digests))
	for i, d := range digests {
		args[i] = d
	}
	marks := strings.Repeat(", ?", len(digests))[2:]
	t, err := scanToken(s.r.QueryRowContext(ctx,
		`SELECT `+tokenColumns+` FROM tokens WHERE digest IN (`+marks+`) LIMIT 1`, args...))
	if err != nil {
		return store.Token{}, fmt.Errorf("get token by digest: %w", err)
	}
	return t, nil
}

// ListTokens returns one page of f's tokens, newest first, ties by id
// descending. An AfterID that is not a token of f's org (and user) is ErrNotFound.
func (s *Store) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	if f.OrgID == "" {
		return nil, fmt.Errorf("list tokens: %w", errNoOrg)
	}
	where, args := "org_id = ?", []any{f.OrgID}
	if f.UserID != "" {
		where += " AND user_id = ?"
		args = append(args, f.UserID)
	}
	if f.AfterID != "" {
		// The cursor is looked up within the same tenant, so a page token
		// from another org reveals nothing about that org's tokens.
		var at int64
		err := s.r.QueryRowContext(ctx, `SELECT created_at FROM tokens WHERE `+where+` AND id = ?`,
			append(slices.Clone(args), f.AfterID)...).Scan(&at)
		if err != nil {
			return nil, fmt.Errorf("list tokens after %s: %w", f.AfterID, mapErr(err))
		}
		where += " AND (created_at, id) < (?, ?)"
		args = append(args, at, f.AfterID)
	}
	if f.Active {
		where += " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
		args = append(args, orNow(f.Now).UnixMicro())
	}
	q := `SELECT ` + tokenColumns + ` FROM tokens WHERE ` + where + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken sets revoked_at to at unless already set, in one statement so
// concurrent revocations agree on the first time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (store.Token, error) {
	t, err := scanToken(s.w.QueryRowContext(ctx,
		`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING `+tokenColumns,
		orNow(at).UnixMicro(), id))
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return t, nil
}

// TouchTokens raises last_used_at for a batch of tokens in one transaction.
func (s *Store) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("touch %d tokens: %w", len(lastUsed), err)
	}
	// After a successful Commit this is a no-op; on any early return it
	// releases the write lock.
	defer func() { _ = tx.Rollback() }()
	// Unknown ids match no row; the condition keeps last_used_at from moving back.
	stmt, err := tx.PrepareContext(ctx,
		`UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)`)
	if err != nil {
		return fmt.Errorf("touch %d tokens: %w", len(lastUsed), err)
	}
	defer stmt.Close()
	for id, at := range lastUsed {
		if at.IsZero() {
			continue
		}
		if _, err := stmt.ExecContext(ctx, at.UnixMicro(), id); err != nil {
			return fmt.Errorf("touch token %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("touch %d tokens: %w", len(lastUsed), err)
	}
	return nil
}

// scanner is the Scan half of *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanToken(row scanner) (store.Token, error) {
	var (
		t                                   store.Token
		scopes                              string
		created, expires, lastUsed, revoked sql.NullInt64
	)
	err := row.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Description, &t.Hint, &t.Digest,
		&t.PepperID, &scopes, &t.CreatedBy, &created, &expires, &lastUsed, &revoked)
	if err != nil {
		return store.Token{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("decode scopes of token %s: %w", t.ID, err)
	}
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMicros(expires), fromMicros(lastUsed), fromMicros(revoked)
	return t, nil
}

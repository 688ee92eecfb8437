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
	created_by, created_at, expires_at, last_used_at, revoked_at,
	external_id, metadata, allowed_cidrs, usage_pool, remaining_uses, rate_limit, rate_period_us, rotated_to_id,
	owner_kind, revoke_reason`

// errNoOrg rejects an unscoped ListTokens: a missing tenant must not mean "all tenants".
var errNoOrg = errors.New("token filter has no org id")

// CreateToken inserts t, with events in the same transaction;
// ErrAlreadyExists if its id or digest is taken.
func (s *Store) CreateToken(ctx context.Context, t store.Token, events ...store.Event) error {
	return s.inTx(ctx, "create token "+t.ID, func(tx *sql.Tx) error {
		if err := ownerActive(ctx, tx, t.UserID); err != nil {
			return err
		}
		if err := createToken(ctx, tx, t); err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
}

// execer is the ExecContext of a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ownerActive is ErrConflict unless user id is neither disabled nor
// deleted (the single writer orders it against DisableUser).
func ownerActive(ctx context.Context, tx *sql.Tx, userID string) error {
	var disabled, deleted sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT disabled_at, deleted_at FROM users WHERE id = ?`, userID).Scan(&disabled, &deleted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return mapErr(err)
	}
	if disabled.Valid || deleted.Valid {
		return store.ErrConflict
	}
	return nil
}

func ownerKind(k string) string {
	if k == "" {
		return store.KindUser
	}
	return k
}

func createToken(ctx context.Context, db execer, t store.Token) error {
	sc, err := jsonList(t.Scopes)
	if err != nil {
		return err
	}
	cidrs, err := jsonList(t.AllowedCIDRs)
	if err != nil {
		return err
	}
	var remaining sql.NullInt64
	if t.UsagePool != "" && t.UsagePool == t.ID {
		remaining = sql.NullInt64{Int64: t.RemainingUses, Valid: true}
	}
	_, err = db.ExecContext(ctx,
		`INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrgID, t.UserID, t.Name, t.Description, t.Hint, t.Digest, t.PepperID, sc,
		t.CreatedBy, orNow(t.CreatedAt).UnixMicro(), micros(t.ExpiresAt), micros(t.LastUsedAt), micros(t.RevokedAt),
		t.ExternalID, string(t.Metadata), cidrs, t.UsagePool, remaining, t.RateLimit, t.RatePeriod.Microseconds(), t.RotatedToID,
		ownerKind(t.OwnerKind), t.RevokeReason)
	return mapErr(err)
}

// jsonList encodes a list column: "[]", never "null", for an empty list.
func jsonList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// RotateToken inserts successor and marks id rotated to it, in one
// transaction (the write connection's BEGIN IMMEDIATE holds the write lock
// throughout, so concurrent rotations of one token queue).
func (s *Store) RotateToken(ctx context.Context, id string, successor store.Token, graceEnd time.Time, events ...store.Event) (store.Token, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	end := graceEnd.UnixMicro()
	t, err := scanToken(tx.QueryRowContext(ctx,
		`UPDATE tokens SET rotated_to_id = ?2,
		        expires_at = CASE WHEN expires_at IS NULL OR expires_at > ?3 THEN ?3 ELSE expires_at END
		 WHERE id = ?1 AND revoked_at IS NULL AND rotated_to_id = ''
		 RETURNING `+tokenColumns, id, successor.ID, end))
	if errors.Is(err, store.ErrNotFound) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE id = ?`, id).Scan(&n); err != nil {
			return store.Token{}, fmt.Errorf("rotate token %s: %w", id, mapErr(err))
		}
		if n > 0 {
			err = store.ErrConflict
		}
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	// The log row before the successor: a successor that cannot be
	// inserted rolls the row back with the rest.
	if t.RevocationSeq, err = appendRevocation(ctx, tx, t, store.RevocationRotated, time.Now(), graceEnd); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: log: %w", id, err)
	}
	if successor.OwnerKind == "" {
		successor.OwnerKind = t.OwnerKind
	}
	if err := createToken(ctx, tx, successor); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: create successor: %w", id, err)
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, mapErr(err))
	}
	return t, nil
}

// TakeTokenUses takes up to n uses from id's counter in one transaction
// (SQLite has one writer, so the read and the write cannot interleave with
// another taker's).
func (s *Store) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("take %d uses of token %s: n must be positive", n, id)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, err)
	}
	defer func() { _ = tx.Rollback() }()
	var have sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT remaining_uses FROM tokens WHERE id = ?`, id).Scan(&have); err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
	}
	if !have.Valid {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, store.ErrConflict)
	}
	taken := min(n, max(have.Int64, 0))
	if taken > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET remaining_uses = ? WHERE id = ?`, have.Int64-taken, id); err != nil {
			return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
	}
	return taken, have.Int64 - taken, nil
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

// ListTokens returns one page of f's tokens in f.Order (newest first by
// default), ties by id in the same direction. An AfterID that is not a token
// of f's org (and user) is ErrNotFound.
func (s *Store) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	if f.OrgID == "" {
		return nil, fmt.Errorf("list tokens: %w", errNoOrg)
	}
	where, args := "org_id = ?", []any{f.OrgID}
	if f.UserID != "" {
		where += " AND user_id = ?"
		args = append(args, f.UserID)
	}
	if f.OwnerKind != "" {
		where += " AND owner_kind = ?"
		args = append(args, f.OwnerKind)
	}
	key, desc := tokenOrderKey(f.Order)
	if f.AfterID != "" {
		// The cursor is looked up within the same tenant, so a page token
		// from another org reveals nothing about that org's tokens.
		var one int
		err := s.r.QueryRowContext(ctx, `SELECT 1 FROM tokens WHERE `+where+` AND id = ?`,
			append(slices.Clone(args), f.AfterID)...).Scan(&one)
		if err != nil {
			return nil, fmt.Errorf("list tokens after %s: %w", f.AfterID, mapErr(err))
		}
		cmp := ">"
		if desc {
			cmp = "<"
		}
		where += " AND (" + key + ", id) " + cmp + " (SELECT " + key + ", id FROM tokens WHERE id = ?)"
		args = append(args, f.AfterID)
	}
	now := orNow(f.Now).UnixMicro()
	status := f.Status
	if status == store.TokenStatusAny && f.Active {
		status = store.TokenStatusActive
	}
	switch status {
	case store.TokenStatusActive:
		where += " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
		args = append(args, now)
	case store.TokenStatusRevoked:
		where += " AND revoked_at IS NOT NULL"
	case store.TokenStatusExpired:
		where += " AND revoked_at IS NULL AND expires_at <= ?"
		args = append(args, now)
	case store.TokenStatusInactive:
		where += " AND (revoked_at IS NOT NULL OR expires_at <= ?)"
		args = append(args, now)
	}
	if f.Query != "" {
		where += " AND (instr(lower(name), lower(?)) > 0 OR instr(lower(hint), lower(?)) > 0 OR instr(lower(description), lower(?)) > 0)"
		args = append(args, f.Query, f.Query, f.Query)
	}
	if f.Scope != "" {
		where += " AND EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = ?)"
		args = append(args, f.Scope)
	}
	if !f.ExpiresBefore.IsZero() {
		where += " AND expires_at <= ?"
		args = append(args, f.ExpiresBefore.UnixMicro())
	}
	if f.RotatedToID != "" {
		where += " AND rotated_to_id = ?"
		args = append(args, f.RotatedToID)
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	q := `SELECT ` + tokenColumns + ` FROM tokens WHERE ` + where + ` ORDER BY ` + key + dir + `, id` + dir
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

// tokenOrderKey is the sort expression of o and whether it descends. Times
// are microseconds; a missing last use sorts first, a missing expiry last.
func tokenOrderKey(o store.TokenOrder) (string, bool) {
	switch o {
	case store.OrderCreatedAsc:
		return "created_at", false
	case store.OrderLastUsedDesc:
		return "COALESCE(last_used_at, -1)", true
	case store.OrderLastUsedAsc:
		return "COALESCE(last_used_at, -1)", false
	case store.OrderExpiresAsc:
		return "COALESCE(expires_at, 9223372036854775807)", false
	case store.OrderExpiresDesc:
		return "COALESCE(expires_at, 9223372036854775807)", true
	default:
		return "created_at", true
	}
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
		scopes, cidrs, metadata             string
		created, expires, lastUsed, revoked sql.NullInt64
		remaining                           sql.NullInt64
		periodMicros                        int64
	)
	err := row.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Description, &t.Hint, &t.Digest,
		&t.PepperID, &scopes, &t.CreatedBy, &created, &expires, &lastUsed, &revoked,
		&t.ExternalID, &metadata, &cidrs, &t.UsagePool, &remaining, &t.RateLimit, &periodMicros, &t.RotatedToID,
		&t.OwnerKind, &t.RevokeReason)
	if err != nil {
		return store.Token{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("decode scopes of token %s: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(cidrs), &t.AllowedCIDRs); err != nil {
		return store.Token{}, fmt.Errorf("decode allowed cidrs of token %s: %w", t.ID, err)
	}
	if len(t.AllowedCIDRs) == 0 {
		t.AllowedCIDRs = nil
	}
	if metadata != "" {
		t.Metadata = []byte(metadata)
	}
	t.RemainingUses = remaining.Int64
	t.RatePeriod = time.Duration(periodMicros) * time.Microsecond
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMicros(expires), fromMicros(lastUsed), fromMicros(revoked)
	return t, nil
}

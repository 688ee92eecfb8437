package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	return s.inTx(ctx, "create token "+t.ID, func(tx pgx.Tx) error {
		if err := ownerActive(ctx, tx, t.UserID); err != nil {
			return err
		}
		if err := createToken(ctx, tx, t); err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
}

// execer is the Exec of a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ownerActive is ErrConflict unless user id is neither disabled nor
// deleted. FOR SHARE orders it against DisableUser, which updates the row
// first: a disable that comes first makes this see it; one that comes
// second waits for this insert and its revoke statement then sees the token.
func ownerActive(ctx context.Context, tx pgx.Tx, userID string) error {
	var active bool
	err := tx.QueryRow(ctx,
		`SELECT disabled_at IS NULL AND deleted_at IS NULL FROM users WHERE id = $1 FOR SHARE`, userID).Scan(&active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil // the foreign key refuses the insert
	case err != nil:
		return mapErr(err)
	case !active:
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
	var remaining *int64
	if t.UsagePool != "" && t.UsagePool == t.ID {
		remaining = &t.RemainingUses
	}
	_, err := db.Exec(ctx,
		`INSERT INTO tokens (`+tokenColumns+`)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
		         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`,
		t.ID, t.OrgID, t.UserID, t.Name, t.Description, t.Hint, t.Digest, t.PepperID, nonNil(t.Scopes),
		t.CreatedBy, orNow(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.LastUsedAt), nullTime(t.RevokedAt),
		t.ExternalID, string(t.Metadata), nonNil(t.AllowedCIDRs), t.UsagePool, remaining, t.RateLimit,
		t.RatePeriod.Microseconds(), t.RotatedToID, ownerKind(t.OwnerKind), t.RevokeReason)
	return mapErr(err)
}

// nonNil keeps a NOT NULL array column from getting NULL for a nil slice.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RotateToken inserts successor and marks id rotated to it, in one
// transaction. The row lock the UPDATE takes makes concurrent rotations of
// one token queue; the second finds rotated_to_id set and gets ErrConflict.
func (s *Store) RotateToken(ctx context.Context, id string, successor store.Token, graceEnd time.Time, events ...store.Event) (store.Token, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The owner's row lock first, as CreateToken takes it: a DisableUser
	// then either revokes the successor too or comes first (the UPDATE
	// below finds the token revoked).
	if err := ownerActive(ctx, tx, successor.UserID); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	t, err := scanToken(tx.QueryRow(ctx,
		`UPDATE tokens SET rotated_to_id = $2,
		        expires_at = CASE WHEN expires_at IS NULL OR expires_at > $3 THEN $3 ELSE expires_at END
		 WHERE id = $1 AND revoked_at IS NULL AND rotated_to_id = ''
		 RETURNING `+tokenColumns, id, successor.ID, graceEnd.UTC()))
	if errors.Is(err, store.ErrNotFound) {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $1)`, id).Scan(&exists); err != nil {
			return store.Token{}, fmt.Errorf("rotate token %s: %w", id, mapErr(err))
		}
		if exists {
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
	if err := tx.Commit(ctx); err != nil {
		return store.Token{}, fmt.Errorf("rotate token %s: %w", id, mapErr(err))
	}
	return t, nil
}

// TakeTokenUses takes up to n uses from id's counter. One statement when n
// is 1 (the per-use path without Redis); otherwise the row is locked, read
// and written in a transaction, since RETURNING shows only the new value.
func (s *Store) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("take %d uses of token %s: n must be positive", n, id)
	}
	if n == 1 {
		var left int64
		err := s.pool.QueryRow(ctx,
			`UPDATE tokens SET remaining_uses = remaining_uses - 1 WHERE id = $1 AND remaining_uses > 0
			 RETURNING remaining_uses`, id).Scan(&left)
		if err == nil {
			return 1, left, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, fmt.Errorf("take a use of token %s: %w", id, mapErr(err))
		}
		// Spent, unlimited or unknown: the general path tells which.
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var have *int64
	if err := tx.QueryRow(ctx, `SELECT remaining_uses FROM tokens WHERE id = $1 FOR UPDATE`, id).Scan(&have); err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
	}
	if have == nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, store.ErrConflict)
	}
	taken := min(n, max(*have, 0))
	if taken > 0 {
		if _, err := tx.Exec(ctx, `UPDATE tokens SET remaining_uses = $2 WHERE id = $1`, id, *have-taken); err != nil {
			return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("take %d uses of token %s: %w", n, id, mapErr(err))
	}
	return taken, *have - taken, nil
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
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
	t, err := scanToken(s.pool.QueryRow(ctx,
		`SELECT `+tokenColumns+` FROM tokens WHERE digest = ANY($1) LIMIT 1`, digests))
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
	var q query
	where := "org_id = " + q.arg(f.OrgID)
	if f.UserID != "" {
		where += " AND user_id = " + q.arg(f.UserID)
	}
	if f.OwnerKind != "" {
		where += " AND owner_kind = " + q.arg(f.OwnerKind)
	}
	key, desc := tokenOrderKey(f.Order)
	if f.AfterID != "" {
		// The cursor is looked up within the same tenant, so a page token
		// from another org reveals nothing about that org's tokens.
		cursor := append(slices.Clone(q.args), f.AfterID)
		var one int
		err := s.pool.QueryRow(ctx,
			`SELECT 1 FROM tokens WHERE `+where+` AND id = $`+strconv.Itoa(len(cursor)),
			cursor...).Scan(&one)
		if err != nil {
			return nil, fmt.Errorf("list tokens after %s: %w", f.AfterID, mapErr(err))
		}
		cmp := ">"
		if desc {
			cmp = "<"
		}
		where += " AND (" + key + ", id) " + cmp + " (SELECT " + key + ", id FROM tokens WHERE id = " + q.arg(f.AfterID) + ")"
	}
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	status := f.Status
	if status == store.TokenStatusAny && f.Active {
		status = store.TokenStatusActive
	}
	switch status {
	case store.TokenStatusActive:
		where += " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > " + q.arg(now.UTC()) + ")"
	case store.TokenStatusRevoked:
		where += " AND revoked_at IS NOT NULL"
	case store.TokenStatusExpired:
		where += " AND revoked_at IS NULL AND expires_at <= " + q.arg(now.UTC())
	case store.TokenStatusInactive:
		where += " AND (revoked_at IS NOT NULL OR expires_at <= " + q.arg(now.UTC()) + ")"
	}
	if f.Query != "" {
		// lower() on both sides; strpos, unlike LIKE, needs no escaping.
		a := "lower(" + q.arg(f.Query) + ")"
		where += " AND (strpos(lower(name), " + a + ") > 0 OR strpos(lower(hint), " + a + ") > 0 OR strpos(lower(description), " + a + ") > 0)"
	}
	if f.Scope != "" {
		where += " AND " + q.arg(f.Scope) + " = ANY(scopes)"
	}
	if !f.ExpiresBefore.IsZero() {
		where += " AND expires_at <= " + q.arg(f.ExpiresBefore.UTC())
	}
	if f.RotatedToID != "" {
		where += " AND rotated_to_id = " + q.arg(f.RotatedToID)
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	sql := `SELECT ` + tokenColumns + ` FROM tokens WHERE ` + where + ` ORDER BY ` + key + dir + `, id` + dir
	if f.Limit > 0 {
		sql += " LIMIT " + q.arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, sql, q.args...)
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

// tokenOrderKey is the sort expression of o and whether it descends: a
// missing last use sorts as the oldest, a missing expiry as the latest.
func tokenOrderKey(o store.TokenOrder) (string, bool) {
	switch o {
	case store.OrderCreatedAsc:
		return "created_at", false
	case store.OrderLastUsedDesc:
		return "COALESCE(last_used_at, '-infinity')", true
	case store.OrderLastUsedAsc:
		return "COALESCE(last_used_at, '-infinity')", false
	case store.OrderExpiresAsc:
		return "COALESCE(expires_at, 'infinity')", false
	case store.OrderExpiresDesc:
		return "COALESCE(expires_at, 'infinity')", true
	default:
		return "created_at", true
	}
}

// TouchTokens raises last_used_at for a batch of tokens in one statement.
func (s *Store) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	ids := make([]string, 0, len(lastUsed))
	ats := make([]time.Time, 0, len(lastUsed))
	for id, at := range lastUsed {
		if at.IsZero() {
			continue
		}
		ids = append(ids, id)
		ats = append(ats, at.UTC())
	}
	if len(ids) == 0 {
		return nil
	}
	// The join skips unknown ids; the extra condition skips rows that would
	// not change, sparing a dead tuple per already-newer token.
	_, err := s.pool.Exec(ctx,
		`UPDATE tokens t SET last_used_at = GREATEST(t.last_used_at, u.at)
		 FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
		 WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)`,
		ids, ats)
	if err != nil {
		return fmt.Errorf("touch %d tokens: %w", len(ids), err)
	}
	return nil
}

func scanToken(row pgx.Row) (store.Token, error) {
	var (
		t                          store.Token
		expires, lastUsed, revoked *time.Time
		metadata                   string
		remaining                  *int64
		periodMicros               int64
	)
	err := row.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Description, &t.Hint, &t.Digest,
		&t.PepperID, &t.Scopes, &t.CreatedBy, &t.CreatedAt, &expires, &lastUsed, &revoked,
		&t.ExternalID, &metadata, &t.AllowedCIDRs, &t.UsagePool, &remaining, &t.RateLimit, &periodMicros, &t.RotatedToID,
		&t.OwnerKind, &t.RevokeReason)
	if err != nil {
		return store.Token{}, mapErr(err)
	}
	if metadata != "" {
		t.Metadata = []byte(metadata)
	}
	if remaining != nil {
		t.RemainingUses = *remaining
	}
	if len(t.AllowedCIDRs) == 0 {
		t.AllowedCIDRs = nil
	}
	t.RatePeriod = time.Duration(periodMicros) * time.Microsecond
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNull(expires), fromNull(lastUsed), fromNull(revoked)
	return t, nil
}

// query numbers positional arguments as they are added.
type query struct{ args []any }

// arg appends v and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// Package postgres is the production store.Store on PostgreSQL through a pgx
// connection pool.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tracing"
)

// defaultStatementTimeout bounds every statement when the URL sets none. The
// store's queries are point lookups and small index scans that finish in
// milliseconds; a statement that runs for seconds is stuck on a lock or a bad
// plan, and letting it hold a pool connection would spread the stall to every
// validation queued behind it.
const defaultStatementTimeout = 5 * time.Second

// Store is a store.Store backed by PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open migrates the database at url to the embedded schema and returns a
// Store over a connection pool configured from url (pool_max_conns and the
// like). Migrating here is a no-op once the schema is current, and goose's
// advisory lock keeps replicas that start together from racing.
func Open(ctx context.Context, url string) (*Store, error) {
	if _, err := pgxpool.ParseConfig(url); err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if err := Migrate(ctx, url); err != nil {
		return nil, err
	}
	pool, err := newPool(ctx, url)
	if err != nil {
		return nil, err
	}
	// Fail at start-up, not on the first request, if the server is unreachable.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// newPool is a pool configured from url, with the default statement
// timeout unless url sets one.
func newPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if !setsStatementTimeout(cfg.ConnConfig.RuntimeParams) {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(defaultStatementTimeout.Milliseconds())
	}
	// A span per query when tracing is on (a no-op span otherwise).
	cfg.ConnConfig.Tracer = tracing.PGXTracer()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return pool, nil
}

// setsStatementTimeout reports whether the URL already chose a timeout, either
// as a parameter of its own or inside libpq-style options ("-c statement_timeout=...").
func setsStatementTimeout(params map[string]string) bool {
	if _, ok := params["statement_timeout"]; ok {
		return true
	}
	return strings.Contains(params["options"], "statement_timeout")
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// mapErr turns driver errors into the store's sentinels: no rows becomes
// ErrNotFound and a unique violation ErrAlreadyExists. Other errors pass through.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w (%s)", store.ErrAlreadyExists, pgErr.ConstraintName)
	}
	return err
}

// nullTime maps the zero time, which the store uses for "not set", to NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// fromNull maps NULL back to the zero time and a set time to UTC.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// orNow defaults an unset time (creation, revocation) to now, in UTC.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

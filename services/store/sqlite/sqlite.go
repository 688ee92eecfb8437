// Package sqlite is the embedded store.Store: one SQLite file through
// modernc.org/sqlite (pure Go, no cgo), so keymint runs with nothing installed.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keymint/keymint/services/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store backed by one SQLite file in WAL mode.
type Store struct {
	// w holds the single write connection. SQLite admits one writer at a
	// time anyway; queueing writers in Go's pool is fairer and cheaper than
	// having them spin in SQLite's busy handler.
	w *sql.DB
	// r holds read-only connections, which WAL lets run beside the writer.
	r *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens the SQLite file at path, creating it and its directory if
// missing, and migrates it to the embedded schema.
func Open(ctx context.Context, path string) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("open sqlite %q: path must not contain '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	if err := restrictFiles(path); err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	// busy_timeout covers the other process (or the read pool) holding a
	// lock; foreign_keys is off by default in SQLite; _txlock=immediate takes
	// the write lock at BEGIN, so a transaction never fails half-way with
	// SQLITE_BUSY when it upgrades from reading to writing.
	const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	// The WAL and shared-memory files exist now; SQLite gives them the
	// database file's mode, and this covers files an older version made.
	if err := restrictFiles(path); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	return &Store{w: w, r: r}, nil
}

// fileMode is the mode of the database and its -wal and -shm files: they
// hold argon2 hashes and token digests, for keymint's user alone.
const fileMode = 0o600

// restrictFiles creates the database file with fileMode when missing (SQLite
// would use 0644 under the usual umask, and gives the -wal and -shm files
// the database file's mode) and narrows any existing one of the three.
func restrictFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^fileMode != 0 {
			if err := os.Chmod(p, fileMode); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrate applies the embedded goose migrations over db.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Ping checks that the file can still be read.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// mapErr turns driver errors into the store's sentinels: no rows becomes
// ErrNotFound and a unique or primary key violation ErrAlreadyExists.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w (%v)", store.ErrAlreadyExists, se)
		}
	}
	return err
}

// micros encodes a time as unix microseconds, the zero time as NULL.
func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromMicros decodes micros; NULL and 0 both mean "not set".
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// orNow defaults an unset time (creation, revocation) to now.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

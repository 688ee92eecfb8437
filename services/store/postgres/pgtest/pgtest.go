// Package pgtest gives tests their own PostgreSQL database: a clone of a
// template migrated once, created per test and dropped when it ends.
// Cloning with CREATE DATABASE ... TEMPLATE copies files, so a fresh, fully
// migrated database costs milliseconds instead of a migration run.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keymint/keymint/services/store/postgres"
)

// EnvURL names the variable holding an admin URL of a throwaway server
// (scripts/pg.sh start prints one). Tests never guess a server: the machine's
// own PostgreSQL is not theirs to fill with databases.
const EnvURL = "KEYMINT_TEST_POSTGRES_URL"

// EnvRequire, set to 1, turns a missing EnvURL from a skip into a failure, so
// CI cannot pass by skipping every database test.
const EnvRequire = "KEYMINT_TEST_REQUIRE_SERVICES"

// templateLockKey is the advisory lock that serializes template creation
// across test processes (go test runs packages in parallel).
const templateLockKey = 0x6b65796d696e74 // "keymint"

var (
	setupOnce sync.Once
	admin     *pgxpool.Pool
	template  string
	setupErr  error
)

// NewDatabase creates a database cloned from the migrated template and
// returns its URL; the database is dropped, connections and all, when t ends.
// Without EnvURL it skips t, or fails it if EnvRequire is 1.
func NewDatabase(t testing.TB) string {
	t.Helper()
	serverURL := os.Getenv(EnvURL)
	if serverURL == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s not set and %s=1; run make test", EnvURL, EnvRequire)
		}
		t.Skip("KEYMINT_TEST_POSTGRES_URL not set; run make test")
	}
	setupOnce.Do(func() { setupErr = setup(serverURL) })
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "keymint_test_" + strings.ToLower(rand.Text()[:16])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends sessions a test left open (a leaked pool, a pending
		// query) instead of failing the drop.
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// setup connects the admin pool and makes sure the template exists.
func setup(serverURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	// The pool lives for the whole test binary; it only ever talks to the
	// admin database, so it never blocks cloning the template.
	admin, err = pgxpool.New(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	sum, err := schemaSum()
	if err != nil {
		return err
	}
	// Named after the migrations it holds, so a server kept running across
	// schema changes gets a new template rather than a stale one.
	template = "keymint_template_" + sum
	return ensureTemplate(ctx, serverURL, template)
}

// ensureTemplate creates and migrates the template unless a finished one
// exists. A finished template is marked IS_TEMPLATE and closed to
// connections: CREATE DATABASE ... TEMPLATE fails while anyone is connected
// to the source, and no test may ever change it.
func ensureTemplate(ctx context.Context, serverURL, name string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire admin connection: %w", err)
	}
	defer conn.Release()
	// Session-level lock: CREATE DATABASE cannot run inside a transaction.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("lock template: %w", err)
	}
	defer func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLockKey); err != nil {
			// Ending the session releases the lock; the pool then drops the conn.
			_ = conn.Conn().Close(ctx)
		}
	}()

	var ready bool
	err = conn.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&ready)
	switch {
	case err == nil && ready:
		return nil
	case err == nil:
		// A run died half-way through building it; start over.
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop unfinished template: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("look up template: %w", err)
	}

	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	u, err := withDatabase(serverURL, name)
	if err != nil {
		return err
	}
	// Migrate closes its connection before returning.
	if err := postgres.Migrate(ctx, u); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("seal template: %w", err)
	}
	return nil
}

// schemaSum fingerprints the embedded migrations.
func schemaSum() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(postgres.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(postgres.Migrations(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// withDatabase returns serverURL pointing at database name instead.
func withDatabase(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("%s must be a postgres:// URL", EnvURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

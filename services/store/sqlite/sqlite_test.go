package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
	"github.com/keymint/keymint/services/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestFileModes: the database, its -wal and -shm files are 0600 and a data
// directory the store creates is 0700, whether the files are new or were
// left world-readable by an older version.
func TestFileModes(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, dir string) {
		t.Helper()
		path := filepath.Join(dir, "keymint.db")
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
			}
		}
	}
	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		check(t, dir)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o700 {
			t.Errorf("data dir mode %o, want 700", m)
		}
	})
	t.Run("existing world-readable", func(t *testing.T) {
		dir := t.TempDir()
		s, err := sqlite.Open(t.Context(), filepath.Join(dir, "keymint.db"))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, n := range []string{"keymint.db", "keymint.db-wal", "keymint.db-shm"} {
			// The -wal and -shm files may be gone after a clean close.
			if err := os.Chmod(filepath.Join(dir, n), 0o644); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		check(t, dir)
	})
}

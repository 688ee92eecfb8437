package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/sqlite"
)

// storeCallTimeout bounds every PostgreSQL call on the client side, matching
// the server-side statement_timeout keymint sets: the store's queries take
// milliseconds, and a server that stopped answering must cost a caller
// seconds, not the whole RPC deadline.
const storeCallTimeout = 5 * time.Second

// OpenStore opens (and migrates) the store c names, for the commands that
// work on it directly.
func OpenStore(ctx context.Context, c StoreConfig, log *slog.Logger) (store.Store, error) {
	return openStore(ctx, c, postgres.ReplicaConfig{}, log)
}

// openStore opens (and migrates) PostgreSQL when a database URL is set, with
// the read replica when one is, else the embedded SQLite file in the data
// directory.
func openStore(ctx context.Context, c StoreConfig, replica postgres.ReplicaConfig, log *slog.Logger) (store.Store, error) {
	if c.DatabaseURL != "" {
		s, err := postgres.Open(ctx, c.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		if replica.URL == "" {
			log.Info("store: postgres")
			return store.WithTimeout(s, storeCallTimeout), nil
		}
		r, err := postgres.OpenReplicated(ctx, s, replica)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open postgres read replica: %w", err)
		}
		log.Info("store: postgres with a read replica", "max_lag", replica.MaxLag.String())
		return store.WithTimeout(r, storeCallTimeout), nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(c.DataDir, "keymint.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	log.Info("store: embedded sqlite", "path", path)
	return s, nil
}

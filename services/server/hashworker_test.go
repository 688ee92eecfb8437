package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/testlog"
)

// --hash-worker process in a binary that cannot be its own worker (this
// test binary's main does not call hashworker.Dispatch) hashes inline and
// says so once.
func TestHashWorkerFallsBackToInline(t *testing.T) {
	logs := &lockedBuffer{}
	c := Config{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", StoreConfig: StoreConfig{DataDir: t.TempDir()}, TokenPrefix: "km",
		LogConfig: LogConfig{LogFormat: "json", LogLevel: "info"}, ShutdownTimeout: time.Second, UsageFlush: time.Second,
		HashConfig: HashConfig{Argon2MemoryKiB: 64, Argon2Time: 1}, Argon2BudgetMiB: 16, HashWorker: HashWorkerProcess,
		Cache: CacheConfig{L1Size: cache.DefaultL1Size, RedisTimeout: 50 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, c, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "password hashing runs inline"); n != 1 {
		t.Errorf("%d fallback warnings, want 1:\n%s", n, logs)
	}
	if st := s.HashWorkerStats(); st.Starts != 0 {
		t.Errorf("worker stats %+v", st)
	}
	c.HashWorker = "elsewhere"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "hash-worker: want process or inline") {
		t.Errorf("validate --hash-worker elsewhere: %v", err)
	}
}

// lockedBuffer collects log lines (and a child's stderr) from any goroutine.
type lockedBuffer = testlog.Buffer

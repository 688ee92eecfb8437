package tokens

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

type touchRecorder struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (r *touchRecorder) TouchTokens(_ context.Context, m map[string]time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range m {
		if t.After(r.seen[id]) {
			r.seen[id] = t
		}
	}
	return nil
}

// Records and flushes race freely; every token's use reaches the store, to
// within usageResolution.
func TestUsageRecorderConcurrent(t *testing.T) {
	t.Parallel()
	st := &touchRecorder{seen: map[string]time.Time{}}
	u := NewUsageRecorder(st, time.Hour, nil)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := []string{"a", "b", "c", "d", "e"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				u.Record(ids[(w+i)%len(ids)], base.Add(time.Duration(i)*time.Millisecond))
				if i%500 == 0 {
					_ = u.Flush(context.Background())
				}
			}
		}()
	}
	wg.Wait()
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := base.Add(1999 * time.Millisecond)
	for _, id := range ids {
		if got := st.seen[id]; last.Sub(got) > usageResolution {
			t.Errorf("%s: last use %v, want within %v of %v", id, got, usageResolution, last)
		}
	}
}

// NewUsageRecorder's defaults: 5 s when no interval is set, a set one and
// a set logger kept, and a logger always (shown failing on `interval <= 0`
// negated, `5 * time.Second` → `/`, and `log == nil` negated).
func TestUsageRecorderDefaults(t *testing.T) {
	t.Parallel()
	if u := NewUsageRecorder(nil, 0, nil); u.interval != 5*time.Second || u.log == nil {
		t.Errorf("defaults: interval %v, logger %v; want 5s and a logger", u.interval, u.log)
	}
	log := slog.New(slog.DiscardHandler)
	if u := NewUsageRecorder(nil, time.Minute, log); u.interval != time.Minute || u.log != log {
		t.Errorf("set: interval %v, logger kept %v; want 1m and the one given", u.interval, u.log == log)
	}
}

// A use within usageResolution of the pending one is not recorded again;
// one usageResolution later or more is (shown failing on Record's
// `t.Sub(prev) >= usageResolution` negated and → `>`).
func TestUsageRecordResolution(t *testing.T) {
	t.Parallel()
	u := NewUsageRecorder(nil, 0, nil)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pending := func() time.Time {
		sh := u.shard("t")
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.pending["t"]
	}
	u.Record("t", t0)
	u.Record("t", t0.Add(usageResolution-1))
	if got := pending(); !got.Equal(t0) {
		t.Fatalf("a use within the resolution replaced the pending one: %v", got)
	}
	u.Record("t", t0.Add(usageResolution))
	if got := pending(); !got.Equal(t0.Add(usageResolution)) {
		t.Fatalf("a use one resolution later was not recorded: pending %v", got)
	}
	u.Record("t", t0.Add(5*usageResolution))
	if got := pending(); !got.Equal(t0.Add(5 * usageResolution)) {
		t.Fatalf("a use seconds later was not recorded: pending %v", got)
	}
}

type failingToucher struct{ err error }

func (f failingToucher) TouchTokens(context.Context, map[string]time.Time) error { return f.err }

// A successful flush empties the pending uses; a failed one keeps them for
// the next (shown failing on Flush's `err != nil` negated, which kept every
// use ever written pending, and dropped the ones a failure could not write).
func TestUsageFlushEmptiesOnlyOnSuccess(t *testing.T) {
	t.Parallel()
	pending := func(u *UsageRecorder) int {
		n := 0
		for i := range u.shards {
			u.shards[i].mu.Lock()
			n += len(u.shards[i].pending)
			u.shards[i].mu.Unlock()
		}
		return n
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := NewUsageRecorder(&touchRecorder{seen: map[string]time.Time{}}, time.Hour, nil)
	ok.Record("a", at)
	ok.Record("b", at)
	if err := ok.Flush(context.Background()); err != nil || pending(ok) != 0 {
		t.Fatalf("after a successful flush: %v, %d uses pending; want none", err, pending(ok))
	}
	bad := NewUsageRecorder(failingToucher{errors.New("store down")}, time.Hour, slog.New(slog.DiscardHandler))
	bad.Record("a", at)
	bad.Record("b", at)
	if err := bad.Flush(context.Background()); err == nil || pending(bad) != 2 {
		t.Fatalf("after a failed flush: %v, %d uses pending; want the error and 2", err, pending(bad))
	}
}

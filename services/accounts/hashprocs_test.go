package accounts

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// hashProbe records GOMAXPROCS from inside each hash; with hold, it holds
// the hashes until that many run at once and reads GOMAXPROCS then, once.
type hashProbe struct {
	mu      sync.Mutex
	procs   []int
	arrived int
	hold    int
	all     chan struct{}
}

// watchHashes installs a probe for the test's hashes. The tests using it are
// not parallel: GOMAXPROCS is the process's.
func watchHashes(t *testing.T, hold int) *hashProbe {
	w := &hashProbe{hold: hold, all: make(chan struct{})}
	onHash = w.probe
	t.Cleanup(func() { onHash = nil })
	return w
}

func (w *hashProbe) probe() {
	w.mu.Lock()
	w.arrived++
	switch {
	case w.hold == 0:
		w.procs = append(w.procs, runtime.GOMAXPROCS(0))
	case w.arrived == w.hold:
		// The held hashes all run now (none has finished): the last to
		// arrive reads GOMAXPROCS for them all.
		w.procs = append(w.procs, runtime.GOMAXPROCS(0))
		close(w.all)
	}
	wait := w.arrived < w.hold
	w.mu.Unlock()
	if wait {
		<-w.all
	}
}

// GOMAXPROCS is one higher per running hash, and back where it was after.
func TestHashAddsAP(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	// Three slots (GOMAXPROCS 4 as far as the hasher knows), all three held
	// until they run together.
	h := newTestHasher(t, HasherConfig{MemoryBudget: 3 * 64 << 10, Procs: 4})
	if h.Slots() != 3 {
		t.Fatalf("%d slots, want 3", h.Slots())
	}
	w := watchHashes(t, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "password number "+strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := h.Stats(); st.Hashes != 3 || st.Peak != 3 {
		t.Fatalf("stats %+v", st)
	}
	if len(w.procs) != 1 || w.procs[0] != base+3 {
		t.Errorf("GOMAXPROCS %v while 3 hashes ran, want %d", w.procs, base+3)
	}
	if p := runtime.GOMAXPROCS(0); p != base {
		t.Errorf("GOMAXPROCS %d after hashing, want %d", p, base)
	}
	// A hasher made now counts the CPUs without the boost.
	if p := boost.unboosted(); p != base {
		t.Errorf("unboosted GOMAXPROCS %d, want %d", p, base)
	}
}

// A 60-way flood of wrong passwords with one right one among them, on one
// paced slot: every call completes (none hangs), the right password is
// accepted, never more than one hash runs at once, each with exactly one P
// added, and GOMAXPROCS is back where it was.
func TestSignInCompletesUnderFlood(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	h := newTestHasher(t, HasherConfig{Procs: 1, MaxWait: time.Hour})
	w := watchHashes(t, 0)
	phc, err := h.Hash(context.Background(), "the right password")
	if err != nil {
		t.Fatal(err)
	}
	results := make([]bool, 61)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			pw := "a wrong password"
			if i == 30 {
				pw = "the right password"
			}
			ok, err := h.Verify(context.Background(), pw, phc)
			if err != nil {
				t.Errorf("verify %d: %v", i, err)
			}
			results[i] = ok
		})
	}
	wg.Wait()
	for i, ok := range results {
		if ok != (i == 30) {
			t.Errorf("verify %d = %v", i, ok)
		}
	}
	st := h.Stats()
	if st.Hashes != 62 || st.Peak != 1 || st.Busy != 0 {
		t.Errorf("stats %+v, want 62 hashes, peak 1", st)
	}
	if len(w.procs) != 62 {
		t.Errorf("%d hashes probed, want 62", len(w.procs))
	}
	for _, p := range w.procs {
		if p != base+1 {
			t.Errorf("GOMAXPROCS %d during a hash, want %d", p, base+1)
		}
	}
	if p := runtime.GOMAXPROCS(0); p != base {
		t.Errorf("GOMAXPROCS %d after the flood, want %d", p, base)
	}
}

// A hasher left to count the CPUs (Procs unset) takes GOMAXPROCS − 1 slots,
// at least 1, and paces its one slot at GOMAXPROCS 1 (README: Password
// hashing). Not parallel: it sets GOMAXPROCS. Shown failing on
// password.go:140 `procs <= 0` → `< 0` (Procs left at 0: one slot, never
// paced) and hashprocs.go:54 `b.running > 0` → `>= 0` and → `<= 0` (the
// GOMAXPROCS of an earlier hash read instead of today's), on 7eede42.
func TestDefaultSlotsFollowGOMAXPROCS(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	for _, c := range []struct {
		procs, slots int
		paced        bool
	}{{5, 4, false}, {2, 1, false}, {1, 1, true}} {
		runtime.GOMAXPROCS(c.procs)
		// Memory for far more slots than CPUs: the CPUs bound them.
		h := newTestHasher(t, HasherConfig{MemoryBudget: 64 << 20})
		if st := h.Stats(); st.Slots != c.slots || st.Paced != c.paced {
			t.Errorf("GOMAXPROCS %d: %d slots, paced %v; want %d, paced %v", c.procs, st.Slots, st.Paced, c.slots, c.paced)
		}
	}
}

// When one of two running hashes ends, GOMAXPROCS is one above its base
// for the one still running. Not parallel: GOMAXPROCS is the process's.
// Shown failing on hashprocs.go:76 `b.base + b.running` → `-` (on 7eede42).
func TestBoostFollowsRunningHashes(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	h := newTestHasher(t, HasherConfig{MemoryBudget: 2 * 64 << 10, Procs: 3})
	if h.Slots() != 2 {
		t.Fatalf("%d slots, want 2", h.Slots())
	}
	// The first hash waits inside its boost until released; the second
	// runs through.
	first, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	onHash = func() {
		held := false
		once.Do(func() { held = true })
		if held {
			close(first)
			<-release
		}
	}
	t.Cleanup(func() { onHash = nil })
	var freed sync.Once
	free := func() { freed.Do(func() { close(release) }) }
	t.Cleanup(free) // a failed test does not leave the first hash held
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "the held password")
		done <- err
	}()
	<-first
	if _, err := h.Hash(context.Background(), "the password run through"); err != nil {
		t.Fatal(err)
	}
	if p := runtime.GOMAXPROCS(0); p != base+1 {
		t.Errorf("GOMAXPROCS %d with one hash still running, want %d", p, base+1)
	}
	free()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := runtime.GOMAXPROCS(0); p != base {
		t.Errorf("GOMAXPROCS %d after hashing, want %d", p, base)
	}
}

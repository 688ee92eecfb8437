package accounts

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadNice reads a thread's nice value from /proc/self/task/TID/stat
// (field 19; the fields after the command name start at field 3).
func threadNice(t *testing.T, tid int) (int, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, false // the thread has ended
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, err := strconv.Atoi(fields[19-3])
	if err != nil {
		t.Errorf("stat of thread %d: %q", tid, s)
	}
	return n, true
}

// hashThreads records, from inside each hashing thread, its id, its nice
// value and GOMAXPROCS; with hold, it holds the hashes until that many run
// at once and reads GOMAXPROCS then, once.
type hashThreads struct {
	t       *testing.T
	mu      sync.Mutex
	tids    map[int]bool
	nices   []int
	procs   []int
	arrived int
	hold    int // hold every hash until this many run together
	all     chan struct{}
}

func watchHashThreads(t *testing.T, h *Hasher, hold int) *hashThreads {
	w := &hashThreads{t: t, tids: map[int]bool{}, hold: hold, all: make(chan struct{})}
	watched.Store(h, w)
	t.Cleanup(func() { watched.Delete(h) })
	return w
}

var (
	// everHashed holds every thread any hasher of any test hashed on: one
	// of an earlier test may still be ending.
	everHashed sync.Map // thread id → true
	watched    sync.Map // *Hasher → *hashThreads
)

func init() {
	onHashThread = func(h *Hasher) {
		everHashed.Store(unix.Gettid(), true)
		if w, ok := watched.Load(h); ok {
			w.(*hashThreads).probe()
		}
	}
}

func (w *hashThreads) probe() {
	tid := unix.Gettid()
	nice, _ := threadNice(w.t, tid)
	w.mu.Lock()
	w.tids[tid] = true
	w.nices = append(w.nices, nice)
	w.arrived++
	switch {
	case w.hold == 0:
		w.procs = append(w.procs, runtime.GOMAXPROCS(0))
	case w.arrived == w.hold:
		// The held hashes are all running now (none has finished): the
		// last to arrive reads GOMAXPROCS for them all.
		w.procs = append(w.procs, runtime.GOMAXPROCS(0))
		close(w.all)
	}
	wait := w.arrived < w.hold
	w.mu.Unlock()
	if wait {
		<-w.all
	}
}

// startNice is the test thread's nice value; it skips a test whose process already runs at hashNice: the
// hashing threads could not be told apart.
func startNice(t *testing.T) int {
	t.Helper()
	n, _ := threadNice(t, unix.Gettid())
	if n >= hashNice {
		t.Skipf("the test runs at nice %d already", n)
	}
	return n
}

// Each hash runs on a thread of its own at nice 19, with GOMAXPROCS one
// higher per running hash, and back where it was after; no other thread of
// the process is niced. Not parallel: GOMAXPROCS is the process's.
func TestHashRunsOnLowPriorityThreads(t *testing.T) {
	nice := startNice(t)
	base := runtime.GOMAXPROCS(0)
	// Three slots (GOMAXPROCS 4 as far as the hasher knows), all three held
	// until they run together.
	h := newTestHasher(t, HasherConfig{MemoryBudget: 3 * 64 << 10, Procs: 4})
	if h.Slots() != 3 {
		t.Fatalf("%d slots, want 3", h.Slots())
	}
	w := watchHashThreads(t, h, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "password number "+strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := h.Stats(); st.NiceErrors != 0 || st.Hashes != 3 {
		t.Fatalf("stats %+v", st)
	}
	if len(w.tids) != 3 {
		t.Errorf("3 hashes ran on %d threads, want 3", len(w.tids))
	}
	for _, n := range w.nices {
		if n != hashNice {
			t.Errorf("a hash ran at nice %d, want %d", n, hashNice)
		}
	}
	if len(w.procs) != 1 || w.procs[0] != base+3 {
		t.Errorf("GOMAXPROCS %v while 3 hashes ran, want %d", w.procs, base+3)
	}
	if p := runtime.GOMAXPROCS(0); p != base {
		t.Errorf("GOMAXPROCS %d after hashing, want %d", p, base)
	}
	// The nice value stays with the hashing threads (ended, or ending:
	// this test's or an earlier one's).
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		_, hashed := everHashed.Load(tid)
		if n, ok := threadNice(t, tid); ok && n != nice && !hashed {
			t.Errorf("thread %d is at nice %d, not a hashing thread", tid, n)
		}
	}
}

// A 60-way flood of wrong passwords with one right one among them, on one
// paced slot: every call completes (none hangs), the right password is
// accepted, every hash ran at nice 19 and never more than one at once, and
// GOMAXPROCS is back where it was.
func TestSignInCompletesUnderFlood(t *testing.T) {
	startNice(t)
	base := runtime.GOMAXPROCS(0)
	h := newTestHasher(t, HasherConfig{Procs: 1, MaxWait: time.Hour})
	w := watchHashThreads(t, h, 0)
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
	if st.Hashes != 62 || st.Peak != 1 || st.Busy != 0 || st.NiceErrors != 0 {
		t.Errorf("stats %+v, want 62 hashes, peak 1", st)
	}
	if len(w.nices) != 62 {
		t.Errorf("%d hashes seen on hashing threads, want 62", len(w.nices))
	}
	for _, n := range w.nices {
		if n != hashNice {
			t.Errorf("a hash ran at nice %d, want %d", n, hashNice)
		}
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

package accounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fastParams keep tests quick; production defaults are exercised by one test.
var fastParams = HashParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newTestHasher(t testing.TB, cfg HasherConfig) *Hasher {
	t.Helper()
	if cfg.Params == (HashParams{}) {
		cfg.Params = fastParams
	}
	h, err := NewHasher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newTestHasher(t, HasherConfig{})
	phc, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC form %q", phc)
	}
	if ok, err := h.Verify(ctx, "correct horse battery", phc); !ok || err != nil {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if ok, err := h.Verify(ctx, "correct horse batterz", phc); ok || err != nil {
		t.Fatalf("Verify(wrong) = %v, %v", ok, err)
	}
	other, _ := h.Hash(ctx, "correct horse battery")
	if other == phc {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	if h.NeedsRehash(phc) {
		t.Fatal("fresh hash needs rehash")
	}
	strong := newTestHasher(t, HasherConfig{Params: HashParams{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if !strong.NeedsRehash(phc) {
		t.Fatal("weaker hash not flagged for rehash")
	}
}

func TestDefaultParams(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HasherConfig{Params: DefaultHashParams})
	phc, err := h.Hash(context.Background(), "a password of ours")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=65536,t=2,p=1$") {
		t.Fatalf("unexpected PHC %q", phc)
	}
}

func TestDecodePHCRejects(t *testing.T) {
	t.Parallel()
	salt := "c2FsdHNhbHRzYWx0c2FsdA"
	key := "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	cases := []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key, // 4 TiB: refused before allocating
		"$argon2id$v=19$m=2097152,t=1,p=1$" + salt + "$" + key,    // 2 GiB
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=100,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=255$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + "c2Fs" + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + "a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 200) + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "!" + "$" + key,
	}
	for _, c := range cases {
		if _, _, _, err := decodePHC(c); err == nil {
			t.Errorf("decodePHC accepted %q", c)
		}
	}
	if _, _, _, err := decodePHC("$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key); err != nil {
		t.Fatalf("decodePHC refused a good string: %v", err)
	}
}

// The hasher runs at most Slots hashes at once: with every slot held a
// caller waits (parked, no hash started), gets one when a slot frees, and
// gives up with ErrBusy after MaxWait; a cancelled caller gets its own
// context error, not ErrBusy. Runs in a synctest bubble, so MaxWait passes
// on the bubble's clock and "still waiting" is observed, not timed.
//
// Mutations: services/accounts/password.go acquire lets a caller through
// without a slot (`default:` → `default: h.started(); return nil`), or
// times out on a cancelled context (`return ctx.Err()` → `return ErrBusy`).
func TestHasherBoundsConcurrency(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// Budget for two hashes of 64 KiB: at most two run at once.
		h := newTestHasher(t, HasherConfig{MemoryBudget: 128 << 10, MaxWait: time.Minute, Procs: 4})
		if h.Slots() > 2 || h.Slots() < 1 {
			t.Fatalf("slots = %d, want 1..2", h.Slots())
		}
		for range h.Slots() {
			if _, err := h.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		held := h.Stats().Hashes
		done := make(chan error, 1)
		go func() {
			_, err := h.Hash(context.Background(), "some password")
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Hash with every slot held returned at once: %v", err)
		default:
		}
		if got := h.Stats().Hashes; got != held {
			t.Fatalf("%d hashes started with every slot held", got-held)
		}
		h.release(time.Now()) // a slot frees: the waiting caller gets it
		if err := <-done; err != nil {
			t.Fatalf("Hash after a slot freed: %v", err)
		}
		if _, err := h.acquire(context.Background()); err != nil { // hold it again
			t.Fatal(err)
		}
		// Every slot held for longer than MaxWait: ErrBusy, and counted.
		go func() {
			_, err := h.Hash(context.Background(), "some password")
			done <- err
		}()
		synctest.Wait()
		time.Sleep(time.Minute)
		if err := <-done; !errors.Is(err, ErrBusy) {
			t.Fatalf("Hash with no slot for MaxWait: %v, want ErrBusy", err)
		}
		if h.Stats().Busy != 1 {
			t.Fatalf("busy = %d, want 1", h.Stats().Busy)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.Hash(ctx, "some password"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Hash with a cancelled context and no slot: %v, want context.Canceled", err)
		}
		for range h.Slots() {
			h.release(time.Now())
		}
		if p := h.Stats().Peak; p > h.Slots() {
			t.Fatalf("peak %d hashes at once, %d slots", p, h.Slots())
		}
	})
	// Many concurrent callers with enough wait all succeed, never more at
	// once than there are slots.
	h2 := newTestHasher(t, HasherConfig{MemoryBudget: 128 << 10, MaxWait: 10 * time.Minute, Procs: 4})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := h2.Hash(context.Background(), "concurrent password"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := h2.Stats(); st.Hashes != 20 || st.Peak > h2.Slots() || st.Peak < 1 {
		t.Fatalf("stats %+v after 20 hashes with %d slots", st, h2.Slots())
	}
}

// Hashing never holds every CPU: at most max(1, GOMAXPROCS-1) slots, and a
// single-CPU server paces its one slot.
func TestHasherLeavesACPU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		procs, slots int
		paced        bool
	}{{1, 1, true}, {2, 1, false}, {3, 2, false}, {4, 3, false}, {16, 4, false}} {
		// A budget of four hashes: the CPU bound decides below 5.
		h := newTestHasher(t, HasherConfig{MemoryBudget: 4 * 64 << 10, Procs: tc.procs})
		if st := h.Stats(); st.Slots != tc.slots || st.Paced != tc.paced {
			t.Errorf("GOMAXPROCS %d: %d slots, paced %v; want %d, %v", tc.procs, st.Slots, st.Paced, tc.slots, tc.paced)
		}
	}
}

// A paced hasher keeps its slot after a hash for as long as the hash took,
// so the next caller waits for it: here, after a "one-hour hash", a caller
// with a short MaxWait is turned away.
func TestPacedHasherRests(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HasherConfig{Procs: 1, MaxWait: time.Millisecond})
	start, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// As if the hash had taken an hour: the slot rests that long.
	h.release(start.Add(-time.Hour))
	if _, err := h.Hash(context.Background(), "some password"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash during the rest: %v, want ErrBusy", err)
	}
	if st := h.Stats(); st.Hashes != 1 || st.Busy != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The dummy PHC string of unknown emails costs a real verification (its
// parameters are the hasher's) and matches nothing.
func TestDummyPHC(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, HasherConfig{})
	d, err := h.DummyPHC()
	if err != nil {
		t.Fatal(err)
	}
	if h.NeedsRehash(d) {
		t.Fatal("dummy PHC has other parameters than the hasher")
	}
	if ok, err := h.Verify(context.Background(), "any password at all", d); ok || err != nil {
		t.Fatalf("Verify(dummy) = %v, %v", ok, err)
	}
	if h.Stats().Hashes != 1 {
		t.Fatal("the verification did not hash")
	}
}

// FuzzDecodePHC: decodePHC never panics, never accepts parameters out of
// bounds, and what it accepts re-encodes to the same string.
func FuzzDecodePHC(f *testing.F) {
	h := newTestHasher(f, HasherConfig{})
	good, _ := h.Hash(context.Background(), "fuzz seed password")
	f.Add(good)
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := decodePHC(s)
		if err != nil {
			return
		}
		if p.check() != nil {
			t.Fatalf("accepted out-of-bounds params %+v", p)
		}
		if encodePHC(p, salt, key) != s {
			t.Fatalf("accepted %q, which re-encodes differently", s)
		}
	})
}

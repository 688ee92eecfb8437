package accounts

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A caller waits at most 2 s for a hash slot by default, a set MaxWait is
// kept, and a password of exactly MaxPasswordLen bytes (which CheckPassword
// takes) hashes and verifies. Shown failing on NewHasher's `wait == 0`
// negated and `2 * time.Second` → `/`, and Hash's `len(password) >
// MaxPasswordLen` → `>=`.
func TestHasherWaitAndLengthBounds(t *testing.T) {
	t.Parallel()
	if h := newTestHasher(t, HasherConfig{}); h.maxWait != 2*time.Second {
		t.Errorf("default wait for a slot %v, want 2s", h.maxWait)
	}
	if h := newTestHasher(t, HasherConfig{MaxWait: time.Minute}); h.maxWait != time.Minute {
		t.Errorf("set wait for a slot %v, want 1m", h.maxWait)
	}
	h := newTestHasher(t, HasherConfig{})
	password := strings.Repeat("p", MaxPasswordLen)
	phc, err := h.Hash(context.Background(), password)
	if err != nil {
		t.Fatalf("hashing a %d-byte password: %v", len(password), err)
	}
	if ok, err := h.Verify(context.Background(), password, phc); !ok || err != nil {
		t.Fatalf("verifying it: %v, %v", ok, err)
	}
	if _, err := h.Hash(context.Background(), password+"p"); err == nil {
		t.Fatalf("a %d-byte password hashed", len(password)+1)
	}
}

// A stored hash's parameters are read up to their bounds and no further:
// 16 threads, 64-byte salt and key (shown failing on decodePHC's `n >
// maxThreads`, and the salt and key lengths' `>`, each → `>=`).
func TestDecodePHCBoundsExact(t *testing.T) {
	t.Parallel()
	p := DefaultHashParams // only encoded: nothing is hashed
	for _, tc := range []struct {
		threads         uint8
		saltLen, keyLen int
		ok              bool
	}{
		{maxThreads, maxSaltLen, maxKeyLen, true},
		{maxThreads + 1, maxSaltLen, maxKeyLen, false},
		{1, maxSaltLen + 1, maxKeyLen, false},
		{1, maxSaltLen, maxKeyLen + 1, false},
	} {
		p.Threads = tc.threads
		phc := encodePHC(p, make([]byte, tc.saltLen), make([]byte, tc.keyLen))
		if _, _, _, err := decodePHC(phc); (err == nil) != tc.ok {
			t.Errorf("threads %d, salt %d, key %d bytes: %v, want ok %v", tc.threads, tc.saltLen, tc.keyLen, err, tc.ok)
		}
	}
}

// At GOMAXPROCS 1 the one slot stays taken, after a hash of duration d, for
// d more (pacedShare ½: hashing gets at most half the CPU), and the caller
// is not kept waiting for it. In a synctest bubble with a Deriver that
// takes 100 ms of the bubble's clock: the first hash returns at 100 ms, the
// next gets the slot at 200 ms and returns at 300 ms, exactly. Shown failing
// on password.go:230 `1/pacedShare - 1` → `+ 1` (ARITHMETIC_BASE and
// INVERT_NEGATIVES at col 68: held 3d), on 7eede42.
func TestPacedSlotHeldAsLongAgain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		h := newTestHasher(t, HasherConfig{Procs: 1, MaxWait: time.Hour,
			Deriver: deriverFunc(func(_ context.Context, _, _ []byte, _, _ uint32, _ uint8, keyLen uint32) ([]byte, error) {
				time.Sleep(d)
				return make([]byte, keyLen), nil
			})})
		if st := h.Stats(); st.Slots != 1 || !st.Paced {
			t.Fatalf("stats %+v, want one paced slot", st)
		}
		start := time.Now()
		for i, want := range []time.Duration{d, 3 * d} {
			if _, err := h.Hash(context.Background(), "a password"); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != want {
				t.Errorf("hash %d returned at %v, want %v", i+1, got, want)
			}
		}
	})
}

// Hash parameters, configured or read from a stored PHC string, are taken
// up to their bounds and no further: 1 to 16 lanes, 8 KiB per lane to 1 GiB,
// 1 to 16 passes, salt 8 to 64 bytes, key 16 to 64 bytes (README: a stored
// PHC string with out-of-range parameters is refused before anything is
// allocated). Nothing is hashed. Held by hand on 7eede42 (the `case`
// conditions of HashParams.check, password.go:176-184, which gremlins does
// not run): each bound's `<` → `<=` or `>` → `>=`, and each negated.
func TestHashParamsBoundsExact(t *testing.T) {
	t.Parallel()
	ok := HashParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	with := func(f func(*HashParams)) HashParams { p := ok; f(&p); return p }
	for _, c := range []struct {
		what string
		p    HashParams
		ok   bool
	}{
		{"1 lane", ok, true},
		{"0 lanes", with(func(p *HashParams) { p.Threads = 0 }), false},
		{"16 lanes", with(func(p *HashParams) { p.Threads, p.Memory = 16, 128 }), true},
		{"17 lanes", with(func(p *HashParams) { p.Threads, p.Memory = 17, 136 }), false},
		{"8 KiB a lane", with(func(p *HashParams) { p.Threads, p.Memory = 2, 16 }), true},
		{"under 8 KiB a lane", with(func(p *HashParams) { p.Threads, p.Memory = 2, 15 }), false},
		{"1 GiB", with(func(p *HashParams) { p.Memory = 1 << 20 }), true},
		{"over 1 GiB", with(func(p *HashParams) { p.Memory = 1<<20 + 1 }), false},
		{"0 passes", with(func(p *HashParams) { p.Time = 0 }), false},
		{"16 passes", with(func(p *HashParams) { p.Time = 16 }), true},
		{"17 passes", with(func(p *HashParams) { p.Time = 17 }), false},
		{"8-byte salt", with(func(p *HashParams) { p.SaltLen = 8 }), true},
		{"7-byte salt", with(func(p *HashParams) { p.SaltLen = 7 }), false},
		{"64-byte salt", with(func(p *HashParams) { p.SaltLen = 64 }), true},
		{"65-byte salt", with(func(p *HashParams) { p.SaltLen = 65 }), false},
		{"16-byte key", with(func(p *HashParams) { p.KeyLen = 16 }), true},
		{"15-byte key", with(func(p *HashParams) { p.KeyLen = 15 }), false},
		{"64-byte key", with(func(p *HashParams) { p.KeyLen = 64 }), true},
		{"65-byte key", with(func(p *HashParams) { p.KeyLen = 65 }), false},
	} {
		if _, err := NewHasher(HasherConfig{Params: c.p}); (err == nil) != c.ok {
			t.Errorf("%s (%+v): NewHasher: %v, want ok %v", c.what, c.p, err, c.ok)
		}
		// The same bounds hold for a stored hash. Lanes past 16 are
		// refused earlier, while parsing.
		phc := encodePHC(c.p, make([]byte, c.p.SaltLen), make([]byte, c.p.KeyLen))
		if _, _, _, err := decodePHC(phc); (err == nil) != c.ok {
			t.Errorf("%s: decodePHC(%s): %v, want ok %v", c.what, phc, err, c.ok)
		}
	}
}

package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/keymint/keymint/services/tracing"
)

// HashParams are argon2id parameters. Memory is in KiB.
type HashParams struct {
	Memory  uint32
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultHashParams follow OWASP's argon2id guidance with headroom:
// 64 MiB, 2 passes, 1 lane, 16-byte salt, 32-byte key.
var DefaultHashParams = HashParams{Memory: 64 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds a stored PHC string must respect before it is hashed with; checked
// before anything is allocated, so a tampered row cannot demand gigabytes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	maxThreads   = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	// MaxPasswordLen bounds the input argon2 hashes.
	MaxPasswordLen = 1024
	// MinPasswordLen is the shortest password accepted for new accounts.
	MinPasswordLen = 10
)

// ErrBusy means every hashing slot stayed taken for the whole wait.
var ErrBusy = errors.New("password hashing is at capacity")

// ErrHashUnavailable means the hash could not be computed (the hashing
// worker died or could not start): the caller may retry, and learns
// nothing about the password.
var ErrHashUnavailable = errors.New("password hashing unavailable")

// KeyDeriver computes argon2id keys elsewhere than in this process's
// goroutines: services/hashworker's child process at the lowest CPU
// priority. Its signature is argon2.IDKey's, with a context (bounding the
// wait) and an error.
type KeyDeriver interface {
	IDKey(ctx context.Context, password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) ([]byte, error)
}

// errPHC is returned for a PHC string that is not ours or out of bounds.
var errPHC = errors.New("invalid argon2id PHC string")

// HasherConfig configures a Hasher.
type HasherConfig struct {
	Params HashParams
	// MemoryBudget in bytes bounds concurrent hashing: slots = budget / memory,
	// at least 1, at most max(1, GOMAXPROCS-1). Zero means 256 MiB.
	MemoryBudget int64
	// MaxWait bounds how long a caller waits for a slot. Zero means 2 s.
	MaxWait time.Duration
	// Procs stands for GOMAXPROCS when not zero (tests).
	Procs int
	// Deriver computes the keys; nil: argon2 in this process, with a P
	// added per hash (withHashP).
	Deriver KeyDeriver
}

// pacedShare is the most of its one CPU a single-CPU server (GOMAXPROCS 1)
// gives to hashing: after a hash of duration d its slot stays taken for
// d × (1/pacedShare − 1), so at least half of every second is left for
// validations however long a sign-in flood lasts. With more CPUs hashing
// takes at most all but one of them, and needs no pacing.
const pacedShare = 0.5

// Hasher hashes and verifies argon2id passwords with bounded concurrency, so
// a sign-in flood cannot eat memory or starve token validation of CPU. Each
// hash runs in the Deriver, or in process with a P of its own added
// (withHashP).
type Hasher struct {
	params  HashParams
	deriver KeyDeriver
	slots   chan struct{}
	maxWait time.Duration
	// paced is set on a single-CPU server: see pacedShare.
	paced bool
	// Counters for Stats.
	inUse, peak  atomic.Int64
	hashes, busy atomic.Int64
}

// HasherStats describes a Hasher's work so far.
type HasherStats struct {
	// Slots is how many hashes may run at once; Peak the most that ever did.
	// Peak × memory per hash never exceeds the memory budget.
	Slots, Peak int
	// Hashes counts argon2 runs; Busy the callers turned away after waiting
	// MaxWait for a slot.
	Hashes, Busy int64
	// Paced says hashing runs at a bounded share of the one CPU.
	Paced bool
}

// Stats returns the Hasher's counters.
func (h *Hasher) Stats() HasherStats {
	return HasherStats{Slots: cap(h.slots), Peak: int(h.peak.Load()), Hashes: h.hashes.Load(), Busy: h.busy.Load(), Paced: h.paced}
}

// MaxWait is how long a caller waits for a hashing slot before ErrBusy.
func (h *Hasher) MaxWait() time.Duration { return h.maxWait }

// NewHasher returns a Hasher.
func NewHasher(cfg HasherConfig) (*Hasher, error) {
	p := cfg.Params
	if p == (HashParams{}) {
		p = DefaultHashParams
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	budget := cfg.MemoryBudget
	if budget == 0 {
		budget = 256 << 20
	}
	procs := cfg.Procs
	if procs <= 0 {
		procs = boost.unboosted() // a hash running elsewhere does not count
	}
	// Hashing never holds every CPU: one is always left for validations.
	n := min(int(budget/(int64(p.Memory)*1024)), procs-1)
	if n < 1 {
		n = 1
	}
	wait := cfg.MaxWait
	if wait == 0 {
		wait = 2 * time.Second
	}
	return &Hasher{params: p, deriver: cfg.Deriver, slots: make(chan struct{}, n), maxWait: wait, paced: procs == 1}, nil
}

// DummyPHC returns a PHC string with the hasher's parameters and a random
// salt and key, for a verification that must cost a real hash and fail
// (an unknown email). Making one hashes nothing: a hash at start would
// leave its memory in the collector's first goal.
func (h *Hasher) DummyPHC() (string, error) {
	salt := make([]byte, h.params.SaltLen)
	key := make([]byte, h.params.KeyLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("dummy salt: %w", err)
	}
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("dummy key: %w", err)
	}
	return encodePHC(h.params, salt, key), nil
}

// Slots is how many hashes may run at once.
func (h *Hasher) Slots() int { return cap(h.slots) }

func (p HashParams) check() error {
	switch {
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("%w: threads %d out of range", errPHC, p.Threads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("%w: memory %d KiB out of range", errPHC, p.Memory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("%w: time %d out of range", errPHC, p.Time)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("%w: salt length %d out of range", errPHC, p.SaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("%w: key length %d out of range", errPHC, p.KeyLen)
	}
	return nil
}

// acquire takes a hashing slot and returns when the hash started.
func (h *Hasher) acquire(ctx context.Context) (time.Time, error) {
	select {
	case h.slots <- struct{}{}:
		h.started()
		return time.Now(), nil
	default:
	}
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		h.started()
		return time.Now(), nil
	case <-t.C:
		h.busy.Add(1)
		return time.Time{}, ErrBusy
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// started counts a hash that got a slot.
func (h *Hasher) started() {
	h.hashes.Add(1)
	n := h.inUse.Add(1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// release gives back the slot of a hash that started at start; a paced
// hasher keeps it a while longer (pacedShare), without making the caller
// wait.
func (h *Hasher) release(start time.Time) {
	h.inUse.Add(-1)
	if h.paced {
		rest := time.Duration(float64(time.Since(start)) * (1/pacedShare - 1))
		time.AfterFunc(rest, func() { <-h.slots })
		return
	}
	<-h.slots
}

// Hash returns password's argon2id hash in PHC string form.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	ctx, span := tracing.Start(ctx, "argon2id.hash")
	defer span.End()
	start, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer h.release(start)
	key, err := h.idKey(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	return encodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches the PHC string, comparing in
// constant time. An over-long password or a malformed or out-of-bounds PHC
// string is an error, decided before any hashing memory is allocated.
func (h *Hasher) Verify(ctx context.Context, password, phc string) (bool, error) {
	p, salt, key, err := decodePHC(phc)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	ctx, span := tracing.Start(ctx, "argon2id.verify")
	defer span.End()
	start, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer h.release(start)
	got, err := h.idKey(ctx, password, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// idKey computes password's argon2id key with p, in the Deriver if there
// is one. A Deriver's failure other than ctx's end is ErrHashUnavailable,
// never a wrong password.
func (h *Hasher) idKey(ctx context.Context, password string, salt []byte, p HashParams) ([]byte, error) {
	if h.deriver == nil {
		var key []byte
		withHashP(func() { key = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen) })
		return key, nil
	}
	key, err := h.deriver.IDKey(ctx, []byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	switch {
	case err == nil && len(key) != int(p.KeyLen):
		return nil, fmt.Errorf("%w: a %d-byte key, want %d", ErrHashUnavailable, len(key), p.KeyLen)
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return key, err
	}
	return nil, fmt.Errorf("%w: %w", ErrHashUnavailable, err)
}

// NeedsRehash reports whether phc was made with other parameters than the
// hasher's, so a sign-in can upgrade it.
func (h *Hasher) NeedsRehash(phc string) bool {
	p, _, _, err := decodePHC(phc)
	return err != nil || p != h.params
}

// Strict: a non-canonical encoding of the same bytes is refused, so one
// hash has exactly one PHC string.
var b64 = base64.RawStdEncoding.Strict()

func encodePHC(p HashParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodePHC parses $argon2id$v=19$m=M,t=T,p=P$salt$key and checks every
// parameter against the bounds above.
func decodePHC(s string) (HashParams, []byte, []byte, error) {
	var p HashParams
	if len(s) > 512 {
		return p, nil, nil, errPHC
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errPHC
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, nil, nil, errPHC
	}
	for i, want := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], want)
		if !ok {
			return p, nil, nil, errPHC
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || (v != "0" && v[0] == '0') {
			return p, nil, nil, errPHC
		}
		switch i {
		case 0:
			p.Memory = uint32(n)
		case 1:
			p.Time = uint32(n)
		case 2:
			if n > maxThreads {
				return p, nil, nil, errPHC
			}
			p.Threads = uint8(n)
		}
	}
	// Lengths are checked on the encoded form, before decoding allocates.
	if b64.DecodedLen(len(parts[4])) > maxSaltLen || b64.DecodedLen(len(parts[5])) > maxKeyLen {
		return p, nil, nil, errPHC
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, errPHC
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, errPHC
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.check(); err != nil {
		return p, nil, nil, err
	}
	return p, salt, key, nil
}

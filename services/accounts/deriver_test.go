package accounts

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/keymint/keymint/services/fault"
)

// deriverFunc is a KeyDeriver of a function: services/hashworker's real
// worker is tested in its own package and end to end.
type deriverFunc func(ctx context.Context, password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) ([]byte, error)

func (f deriverFunc) IDKey(ctx context.Context, password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) ([]byte, error) {
	return f(ctx, password, salt, passes, memoryKiB, threads, keyLen)
}

// A Hasher with a Deriver makes and checks the same PHC strings as one
// without, and never adds a P.
func TestDeriverMatchesInline(t *testing.T) {
	calls := 0
	h := newTestHasher(t, HasherConfig{Deriver: deriverFunc(func(_ context.Context, pw, salt []byte, passes, mem uint32, threads uint8, keyLen uint32) ([]byte, error) {
		calls++
		return argon2.IDKey(pw, salt, passes, mem, threads, keyLen), nil
	})})
	inline := newTestHasher(t, HasherConfig{})
	w := watchHashes(t, 0)
	ctx := context.Background()
	phc, err := h.Hash(ctx, "the password")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h    *Hasher
		pw   string
		want bool
	}{{h, "the password", true}, {inline, "the password", true}, {h, "another", false}} {
		if ok, err := c.h.Verify(ctx, c.pw, phc); err != nil || ok != c.want {
			t.Errorf("verify %q = %v, %v", c.pw, ok, err)
		}
	}
	if calls != 3 || len(w.procs) != 1 {
		t.Errorf("%d deriver calls, %d inline hashes; want 3 and 1", calls, len(w.procs))
	}
}

// A Deriver's failure is Unavailable with a retry hint, never a wrong
// password; a short key is one too; a cancelled wait stays the context's.
// Seen to fail with idKey returning nil, nil for a Deriver's error (then a
// dead worker read as a wrong password).
func TestDeriverFailureIsUnavailable(t *testing.T) {
	h := newTestHasher(t, HasherConfig{})
	phc, err := h.Hash(context.Background(), "the password")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]deriverFunc{
		"error": func(context.Context, []byte, []byte, uint32, uint32, uint8, uint32) ([]byte, error) {
			return nil, errors.New("worker died")
		},
		"short key": func(context.Context, []byte, []byte, uint32, uint32, uint8, uint32) ([]byte, error) {
			return make([]byte, 3), nil
		},
	} {
		failing := newTestHasher(t, HasherConfig{Deriver: f})
		ok, err := failing.Verify(context.Background(), "the password", phc)
		if ok || !errors.Is(err, ErrHashUnavailable) {
			t.Errorf("%s: verify = %v, %v; want ErrHashUnavailable", name, ok, err)
		}
		var fe *fault.Error
		if !errors.As(hashFault(err), &fe) || fe.Code != fault.Unavailable || fe.RetryAfter == 0 {
			t.Errorf("%s: fault %v, want Unavailable with Retry-After", name, hashFault(err))
		}
		if _, err := failing.Hash(context.Background(), "a password"); !errors.Is(err, ErrHashUnavailable) {
			t.Errorf("%s: hash: %v", name, err)
		}
	}
	cancelled := newTestHasher(t, HasherConfig{Deriver: deriverFunc(func(ctx context.Context, _, _ []byte, _, _ uint32, _ uint8, _ uint32) ([]byte, error) {
		return nil, context.Canceled
	})})
	if _, err := cancelled.Verify(context.Background(), "the password", phc); !errors.Is(err, context.Canceled) || errors.Is(err, ErrHashUnavailable) {
		t.Errorf("cancelled: %v", err)
	}
}

package tokens

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/cache"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/sqlite"
	"github.com/keymint/keymint/services/testwait"
)

// appliedCache records what a follower applied, in order.
type appliedCache struct{ ids []string }

func (c *appliedCache) Revoke(_ cache.Key, id string, _, _ time.Time) { c.ids = append(c.ids, id) }
func (c *appliedCache) Flush()                                        {}

// revokeMany writes n revocation log rows in a real store and returns their
// token ids in sequence order.
func revokeMany(t *testing.T, st store.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	org, err := st.EnsureOrg(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{ID: uuid.NewString(), OrgID: org.ID, Email: "a@example.com", PasswordHash: "x"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := make([]string, n)
	for i := range ids {
		id := uuid.NewString()
		d := sha256.Sum256([]byte(id))
		if err := st.CreateToken(ctx, store.Token{ID: id, OrgID: org.ID, UserID: u.ID, Name: "t", Hint: "km_000000",
			Digest: d[:], PepperID: "1", CreatedBy: u.ID, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RevokeToken(ctx, id, now); err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// A follower catches up past one page of the log (revocationPage rows a
// query), and a resuming stream's backlog is the rows in (after, upTo] in
// order, past a page too, or "resync" beyond Backlog rows.
//
// Mutations, each seen to fail it: revocations.go catchUpLocked's `len(rows)
// < revocationPage` → `<=` (the rows past the first page left for the next
// poll); revocationOf's `r.Reason == store.RevocationRotated` negated (a
// revocation streamed as a rotation); backlog's `row.Seq > upTo` → `>=`, `len(out) > r.cfg.Backlog` →
// `>=`, `len(rows) < revocationPage` → `<=`.
func TestRevocationCatchUpAndBacklogPastOnePage(t *testing.T) {
	t.Parallel()
	ctx := testwait.Context(t) // CatchUp ends, failing, if it never stops reading
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &appliedCache{}
	r := NewRevocations(RevocationsConfig{Log: st, Cache: c, Backlog: revocationPage + 2})
	if err := r.CatchUp(ctx); err != nil || r.Applied() != 0 {
		t.Fatalf("first read of an empty log: applied %d, %v", r.Applied(), err)
	}
	n := revocationPage + 2
	ids := revokeMany(t, st, n)
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Applied() != int64(n) || len(c.ids) != n || c.ids[n-1] != ids[n-1] {
		t.Fatalf("one CatchUp over %d rows applied up to %d (%d rows)", n, r.Applied(), len(c.ids))
	}

	for _, b := range []struct {
		after, upTo int64
		want        int // rows; -1: resync
	}{
		{0, int64(n), n}, // exactly Backlog rows, over two pages
		{0, 3, 3},
		{2, 5, 3},
		{5, 5, 0},
	} {
		got, ok, err := r.backlog(ctx, b.after, b.upTo)
		if err != nil || !ok || len(got) != b.want {
			t.Errorf("backlog(%d, %d) = %d rows, ok %v, %v; want %d", b.after, b.upTo, len(got), ok, err, b.want)
			continue
		}
		for i, v := range got {
			if v.Seq != b.after+int64(i)+1 || v.TokenID != ids[b.after+int64(i)] || v.Rotated {
				t.Errorf("backlog(%d, %d)[%d] = seq %d, token %s, rotated %v", b.after, b.upTo, i, v.Seq, v.TokenID, v.Rotated)
			}
		}
	}
	r.cfg.Backlog = n - 1
	if got, ok, err := r.backlog(ctx, 0, int64(n)); err != nil || ok || got != nil {
		t.Errorf("backlog of %d rows with Backlog %d: %d rows, ok %v, %v; want resync", n, n-1, len(got), ok, err)
	}
}

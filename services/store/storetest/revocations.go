package storetest

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// listAll reads the whole revocation log after seq after, a page at a time.
func listAll(t *testing.T, s store.Store, after int64, page int) []store.RevocationRecord {
	t.Helper()
	var out []store.RevocationRecord
	for {
		rs := must(s.ListRevocations(t.Context(), after, page))(t)
		out = append(out, rs...)
		if len(rs) < page {
			return out
		}
		after = rs[len(rs)-1].Seq
	}
}

func testRevocationLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	if oldest, head := must2(s.RevocationLogBounds(ctx))(t); oldest != 0 || head != 0 {
		t.Fatalf("empty log: bounds = %d, %d; want 0, 0", oldest, head)
	}
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	a, b := newToken(org.ID, u.ID, base), newToken(org.ID, u.ID, base)
	for _, tok := range []store.Token{a, b} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	at := base.Add(time.Hour)
	ra := must(s.RevokeToken(ctx, a.ID, at))(t)
	if ra.RevocationSeq <= 0 {
		t.Fatalf("RevokeToken: RevocationSeq = %d, want a positive sequence", ra.RevocationSeq)
	}
	// Revoking again is a no-op: no second row.
	if again := must(s.RevokeToken(ctx, a.ID, at.Add(time.Hour)))(t); again.RevocationSeq != 0 {
		t.Errorf("second RevokeToken: RevocationSeq = %d, want 0 (no new row)", again.RevocationSeq)
	}
	grace := base.Add(2 * time.Hour)
	rb := must(s.RotateToken(ctx, b.ID, newToken(org.ID, u.ID, base), grace))(t)
	if rb.RevocationSeq <= ra.RevocationSeq {
		t.Fatalf("RotateToken: RevocationSeq = %d, want more than %d", rb.RevocationSeq, ra.RevocationSeq)
	}
	all := listAll(t, s, 0, 10)
	if len(all) != 2 {
		t.Fatalf("log = %+v, want 2 rows", all)
	}
	if r := all[0]; r.Seq != ra.RevocationSeq || r.TokenID != a.ID || !bytes.Equal(r.Digest, a.Digest) ||
		r.Reason != store.RevocationRevoked || !r.NotAfter.IsZero() {
		t.Errorf("revoke row = %+v", r)
	} else {
		checkTime(t, "revoke row At", r.At, at)
	}
	if r := all[1]; r.Seq != rb.RevocationSeq || r.TokenID != b.ID || !bytes.Equal(r.Digest, b.Digest) ||
		r.Reason != store.RevocationRotated {
		t.Errorf("rotate row = %+v", r)
	} else {
		checkTime(t, "rotate row NotAfter", r.NotAfter, grace)
	}
	if rs := must(s.ListRevocations(ctx, ra.RevocationSeq, 10))(t); len(rs) != 1 || rs[0].Seq != rb.RevocationSeq {
		t.Errorf("ListRevocations(after the first) = %+v, want the rotation only", rs)
	}
	if rs := must(s.ListRevocations(ctx, 0, 1))(t); len(rs) != 1 || rs[0].Seq != ra.RevocationSeq {
		t.Errorf("ListRevocations(limit 1) = %+v, want the first row", rs)
	}
	if oldest, head := must2(s.RevocationLogBounds(ctx))(t); oldest != ra.RevocationSeq || head != rb.RevocationSeq {
		t.Errorf("bounds = %d, %d; want %d, %d", oldest, head, ra.RevocationSeq, rb.RevocationSeq)
	}

	// Pruning everything keeps the newest row, so the head survives.
	if n := must(s.PruneRevocations(ctx, time.Now().Add(time.Hour)))(t); n != 1 {
		t.Errorf("PruneRevocations = %d, want 1", n)
	}
	if oldest, head := must2(s.RevocationLogBounds(ctx))(t); oldest != rb.RevocationSeq || head != rb.RevocationSeq {
		t.Errorf("bounds after prune = %d, %d; want %d, %d", oldest, head, rb.RevocationSeq, rb.RevocationSeq)
	}
	// A sequence is never reused after a prune.
	c := newToken(org.ID, u.ID, base)
	if err := s.CreateToken(ctx, c); err != nil {
		t.Fatal(err)
	}
	if rc := must(s.RevokeToken(ctx, c.ID, at))(t); rc.RevocationSeq <= rb.RevocationSeq {
		t.Errorf("seq after prune = %d, want more than %d", rc.RevocationSeq, rb.RevocationSeq)
	}
}

// A change that fails writes no log row: the row is in its transaction.
func testRevocationLogSameTransaction(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	old := newToken(org.ID, u.ID, base)
	fresh := newToken(org.ID, u.ID, base)
	for _, tok := range []store.Token{old, fresh} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// The successor's digest is taken: the rotation fails after its log
	// row was inserted, and must take the row with it.
	dup := newToken(org.ID, u.ID, base)
	dup.Digest = bytes.Clone(old.Digest)
	_, err := s.RotateToken(ctx, fresh.ID, dup, base)
	checkErr(t, "RotateToken(successor digest taken)", err, store.ErrAlreadyExists)
	_, err = s.RevokeToken(ctx, uuid.NewString(), base)
	checkErr(t, "RevokeToken(unknown)", err, store.ErrNotFound)
	_, err = s.RotateToken(ctx, uuid.NewString(), newToken(org.ID, u.ID, base), base)
	checkErr(t, "RotateToken(unknown)", err, store.ErrNotFound)
	if rs := listAll(t, s, 0, 10); len(rs) != 0 {
		t.Fatalf("failed changes left log rows: %+v", rs)
	}
}

// Concurrent revocations get distinct sequences, and a reader following
// the log by "after the last sequence I saw" misses none: a sequence is
// never committed after a higher one became visible.
func testRevocationLogConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	const n = 40
	toks := make([]store.Token, n)
	for i := range toks {
		toks[i] = newToken(org.ID, u.ID, base)
		if err := s.CreateToken(ctx, toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	var seen []store.RevocationRecord
	var last int64
	follow := func() {
		for _, r := range listAll(t, s, last, 7) {
			if r.Seq <= last {
				t.Errorf("ListRevocations(after %d) returned seq %d", last, r.Seq)
			}
			last = r.Seq
			seen = append(seen, r)
		}
	}
	done := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
				follow()
			}
		}
	}()
	seqs := make([]int64, n)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			r, err := s.RevokeToken(ctx, toks[i].ID, base)
			if err != nil {
				t.Errorf("RevokeToken: %v", err)
				return
			}
			seqs[i] = r.RevocationSeq
		})
	}
	wg.Wait()
	close(done)
	<-readerDone
	follow()
	slices.Sort(seqs)
	if uniq := slices.Compact(slices.Clone(seqs)); len(uniq) != n || seqs[0] <= 0 {
		t.Fatalf("sequences = %v, want %d distinct positive ones", seqs, n)
	}
	ids := map[string]bool{}
	for _, r := range seen {
		ids[r.TokenID] = true
	}
	if len(seen) != n || len(ids) != n {
		t.Fatalf("the follower saw %d rows (%d tokens), want %d: a sequence became visible after a higher one", len(seen), len(ids), n)
	}
}

func must2[A, B any](a A, b B, err error) func(testing.TB) (A, B) {
	return func(t testing.TB) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// Leak reports: recorded all or none, listed oldest first while
// unprocessed, marked once.
func testLeakReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	var reports []store.LeakReport
	for i := range 5 {
		reports = append(reports, store.LeakReport{ID: fmt.Sprintf("r%d", i), TokenID: uuid.NewString(), Reporter: "github",
			URL: fmt.Sprintf("https://github.com/o/r/blob/abc/f%d.txt", i), Source: "content", ReceivedAt: base.Add(time.Duration(i) * time.Second)})
	}
	if err := s.RecordLeakReports(ctx, reports[:3]); err != nil {
		t.Fatal(err)
	}
	// A batch with one duplicate id leaves nothing of itself behind.
	err := s.RecordLeakReports(ctx, []store.LeakReport{reports[3], reports[0]})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate id: %v, want ErrAlreadyExists", err)
	}
	if err := s.RecordLeakReports(ctx, reports[3:]); err != nil {
		t.Fatalf("the batch after a failed one: %v", err)
	}
	got := must(s.PendingLeakReports(ctx, 10))(t)
	if !reflect.DeepEqual(got, reports) {
		t.Fatalf("PendingLeakReports =\n%+v\nwant\n%+v", got, reports)
	}
	if got := must(s.PendingLeakReports(ctx, 2))(t); len(got) != 2 || got[0].ID != "r0" {
		t.Fatalf("PendingLeakReports(2) = %+v", got)
	}
	if err := s.MarkLeakReportsProcessed(ctx, []string{"r0", "r2", "unknown"}, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got = must(s.PendingLeakReports(ctx, 10))(t)
	if len(got) != 3 || got[0].ID != "r1" || got[1].ID != "r3" || got[2].ID != "r4" {
		t.Fatalf("after marking r0, r2: %+v", got)
	}
	if err := s.MarkLeakReportsProcessed(ctx, nil, base); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLeakReports(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// Audit details round-trip; none reads back as nil.
func testAuditDetails(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newAuditEvent(uuid.NewString(), base)
	e.Details = map[string]string{"url": "https://github.com/o/r/commit/1", "source": "commit"}
	plain := newAuditEvent(uuid.NewString(), base.Add(time.Second))
	plain.OrgID = e.OrgID
	appendAuditEvents(t, s, e, plain)
	got := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: e.OrgID}))(t)
	if len(got) != 2 || got[0].Details != nil || !reflect.DeepEqual(got[1].Details, e.Details) {
		t.Fatalf("details: %+v", got)
	}
}

// The subject filter selects the events about one user, within the org.
func testAuditSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	org := uuid.NewString()
	mine := newAuditEvent(org, base)
	mine.SubjectUserID = "u1"
	theirs := newAuditEvent(org, base.Add(time.Second))
	theirs.SubjectUserID = "u2"
	none := newAuditEvent(org, base.Add(2*time.Second))
	elsewhere := newAuditEvent(uuid.NewString(), base)
	elsewhere.SubjectUserID = "u1"
	appendAuditEvents(t, s, mine, theirs, none, elsewhere)
	got := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: org, SubjectUserID: "u1"}))(t)
	if len(got) != 1 || got[0].ID != mine.ID || got[0].SubjectUserID != "u1" {
		t.Fatalf("subject u1: %+v", got)
	}
	if all := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: org}))(t); len(all) != 3 {
		t.Fatalf("whole org: %d events, want 3", len(all))
	}
}

// TokensByDigests finds every token among many digests, across chunks.
func testTokensByDigests(t *testing.T, s store.Store) {
	ctx := t.Context()
	org, u := newOrgUser(t, s, "acme", "alice@example.com")
	var want []store.Token
	for range 3 {
		tok := newToken(org.ID, u.ID, base)
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		want = append(want, tok)
	}
	// 2,500 digests, the known ones spread over the chunks.
	var digests [][]byte
	next := 0
	for i := range 2500 {
		switch i {
		case 10, 1200, 2499:
			digests = append(digests, bytes.Clone(want[next].Digest))
			next++
		default:
			digests = append(digests, randomBytes(32))
		}
	}
	got := must(s.TokensByDigests(ctx, digests))(t)
	ids := map[string]store.Token{}
	for _, g := range got {
		ids[g.ID] = g
	}
	if len(got) != 3 || len(ids) != 3 {
		t.Fatalf("TokensByDigests found %d tokens (%d distinct), want 3", len(got), len(ids))
	}
	for _, w := range want {
		checkToken(t, "TokensByDigests", ids[w.ID], w)
	}
	if got := must(s.TokensByDigests(ctx, nil))(t); len(got) != 0 {
		t.Fatalf("no digests: %v", got)
	}
}

package storetest

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/store"
)

func newAuditEvent(orgID string, created time.Time) store.AuditEvent {
	return store.AuditEvent{
		ID:          uuid.NewString(),
		OrgID:       orgID,
		ActorUserID: uuid.NewString(),
		ActorEmail:  "actor@example.com",
		Action:      audit.TokenMint,
		TargetID:    uuid.NewString(),
		ClientIP:    "2001:db8::7",
		UserAgent:   "curl/8.5.0",
		CreatedAt:   created,
	}
}

func appendAuditEvents(t *testing.T, s store.Store, events ...store.AuditEvent) {
	t.Helper()
	for _, e := range events {
		if err := s.AppendAuditEvent(t.Context(), e); err != nil {
			t.Fatalf("AppendAuditEvent: %v", err)
		}
	}
}

// sortedEvents orders events as ListAuditEvents does: newest first, ties by
// id descending (bytewise).
func sortedEvents(events []store.AuditEvent) []store.AuditEvent {
	out := slices.Clone(events)
	slices.SortFunc(out, func(a, b store.AuditEvent) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out
}

func eventIDs(events []store.AuditEvent) string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return strings.Join(ids, ",")
}

func testAuditRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := newAuditEvent(uuid.NewString(), base)
	appendAuditEvents(t, s, e)
	got := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: e.OrgID}))(t)
	if len(got) != 1 {
		t.Fatalf("ListAuditEvents = %d events, want 1", len(got))
	}
	g := got[0]
	if g.ID != e.ID || g.OrgID != e.OrgID || g.ActorUserID != e.ActorUserID || g.ActorEmail != e.ActorEmail ||
		g.Action != e.Action || g.TargetID != e.TargetID || g.ClientIP != e.ClientIP || g.UserAgent != e.UserAgent {
		t.Errorf("ListAuditEvents = %+v, want %+v", g, e)
	}
	checkTime(t, "CreatedAt", g.CreatedAt, e.CreatedAt)
	checkUTC(t, "CreatedAt", g.CreatedAt)
	checkErr(t, "AppendAuditEvent(duplicate id)", s.AppendAuditEvent(ctx, e), store.ErrAlreadyExists)

	// A zero time is set to now; empty fields stay empty.
	before := time.Now().Add(-time.Second)
	bare := store.AuditEvent{ID: uuid.NewString(), OrgID: "", Action: audit.SignInFailure}
	appendAuditEvents(t, s, bare)
	orgless := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: ""}))(t)
	if len(orgless) != 1 || orgless[0].ID != bare.ID || orgless[0].ActorEmail != "" || orgless[0].CreatedAt.Before(before) {
		t.Errorf("org-less events = %+v, want only %s with a current time", orgless, bare.ID)
	}
}

func testAuditPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme, globex := uuid.NewString(), uuid.NewString()
	var all []store.AuditEvent
	// Ties in time must be split by id.
	for _, created := range []time.Time{base, base, base, base.Add(time.Second), base.Add(-time.Hour), base.Add(time.Microsecond)} {
		all = append(all, newAuditEvent(acme, created))
	}
	appendAuditEvents(t, s, all...)
	other := newAuditEvent(globex, base)
	appendAuditEvents(t, s, other, newAuditEvent("", base))
	want := sortedEvents(all)
	for _, limit := range []int{0, 1, 2, len(want), len(want) + 1} {
		var got []store.AuditEvent
		f := store.AuditFilter{OrgID: acme, Limit: limit}
		for page := 0; ; page++ {
			if page > len(want)+1 {
				t.Fatalf("ListAuditEvents(limit %d) does not end", limit)
			}
			p := must(s.ListAuditEvents(ctx, f))(t)
			if limit > 0 && len(p) > limit {
				t.Fatalf("page of %d events, limit %d", len(p), limit)
			}
			got = append(got, p...)
			if limit == 0 || len(p) < limit {
				break
			}
			f.AfterID = p[len(p)-1].ID
		}
		if eventIDs(got) != eventIDs(want) {
			t.Errorf("limit %d: pages = %s, want %s", limit, eventIDs(got), eventIDs(want))
		}
	}
	// Another org's event id is no cursor here.
	_, err := s.ListAuditEvents(ctx, store.AuditFilter{OrgID: acme, AfterID: other.ID})
	checkErr(t, "ListAuditEvents(after another org's event)", err, store.ErrNotFound)
	if got := must(s.ListAuditEvents(ctx, store.AuditFilter{OrgID: globex}))(t); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("globex events = %s, want %s", eventIDs(got), other.ID)
	}
}

package audit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/store/sqlite"
)

// onBothStores runs test on SQLite and on PostgreSQL (the throwaway server
// of KEYMINT_TEST_POSTGRES_URL; skipped without it unless required).
func onBothStores(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		st, err := postgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st)
	})
}

// fromPeer is a call's context as gRPC gives it.
func fromPeer(ip string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}})
	return metadata.NewIncomingContext(ctx, metadata.Pairs("user-agent", "test-agent/1"))
}

func TestRecordFillsAndWrites(t *testing.T) {
	t.Parallel()
	onBothStores(t, func(t *testing.T, st store.Store) {
		at := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
		r := audit.New(audit.Config{Store: st, Now: func() time.Time { return at }})
		org, user := uuid.NewString(), uuid.NewString()
		r.Record(fromPeer("198.51.100.7"), store.AuditEvent{OrgID: org, ActorUserID: user, ActorEmail: "a@example.com",
			Action: audit.TokenMint, TargetID: "t1", Details: map[string]string{"source": "test"}})
		list, err := st.ListAuditEvents(t.Context(), store.AuditFilter{OrgID: org, Limit: 10})
		if err != nil || len(list) != 1 {
			t.Fatalf("ListAuditEvents = %+v, %v", list, err)
		}
		e := list[0]
		if uuid.Validate(e.ID) != nil || !e.CreatedAt.Equal(at.Truncate(time.Microsecond)) || e.ClientIP != "198.51.100.7" ||
			e.UserAgent != "test-agent/1" || e.ActorUserID != user || e.Action != audit.TokenMint || e.TargetID != "t1" ||
			e.Details["source"] != "test" {
			t.Errorf("recorded %+v", e)
		}
	})
}

// A caller that hung up still gets its action recorded: it happened.
func TestRecordOutlivesCanceledCaller(t *testing.T) {
	t.Parallel()
	onBothStores(t, func(t *testing.T, st store.Store) {
		ctx, cancel := context.WithCancel(fromPeer("198.51.100.7"))
		cancel()
		org := uuid.NewString()
		audit.New(audit.Config{Store: st}).Record(ctx, store.AuditEvent{OrgID: org, Action: audit.SignOut})
		if list, err := st.ListAuditEvents(t.Context(), store.AuditFilter{OrgID: org, Limit: 10}); err != nil || len(list) != 1 {
			t.Fatalf("events = %+v, %v; want the sign-out", list, err)
		}
	})
}

// A write that fails is logged (without the event's details) and does not
// fail or stop the caller; a nil Recorder records nothing.
func TestRecordFailureIsLogged(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keymint.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // the fault: the store is gone
	var logs bytes.Buffer
	r := audit.New(audit.Config{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r.Record(t.Context(), store.AuditEvent{OrgID: "o", Action: audit.PasswordChange, Details: map[string]string{"url": "https://x/secret-ish"}})
	if out := logs.String(); !strings.Contains(out, "audit event not recorded") || !strings.Contains(out, audit.PasswordChange) ||
		strings.Contains(out, "secret-ish") {
		t.Errorf("log = %q", out)
	}
	var none *audit.Recorder
	none.Record(t.Context(), store.AuditEvent{Action: audit.SignOut})
}

func TestListRules(t *testing.T) {
	t.Parallel()
	onBothStores(t, func(t *testing.T, st store.Store) {
		org, other := uuid.NewString(), uuid.NewString()
		admin := authn.Principal{UserID: uuid.NewString(), OrgID: org, Admin: true, Method: authn.ByPassword}
		member := authn.Principal{UserID: uuid.NewString(), OrgID: org, Method: authn.ByToken}
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		n := 0
		add := func(e store.AuditEvent) store.AuditEvent {
			n++
			e.ID, e.CreatedAt = uuid.NewString(), base.Add(time.Duration(n)*time.Second)
			if err := st.AppendAuditEvent(t.Context(), e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		for range 4 {
			add(store.AuditEvent{OrgID: org, ActorUserID: admin.UserID, Action: audit.SignInSuccess})
		}
		leak := add(store.AuditEvent{OrgID: org, ActorEmail: "github", Action: audit.TokenLeakReport, SubjectUserID: member.UserID})
		foreign := add(store.AuditEvent{OrgID: other, Action: audit.TokenMint})
		add(store.AuditEvent{Action: audit.SignInFailure}) // no organization's
		as := func(p authn.Principal) context.Context { return authn.WithPrincipal(t.Context(), p) }

		all, next, err := audit.List(as(admin), st, audit.Query{PageSize: 0, PageToken: ""})
		if err != nil || len(all) != 5 || next != "" || all[0].ID != leak.ID {
			t.Fatalf("admin: %d events (first %+v), next %q, %v; want the org's 5, newest first", len(all), all, next, err)
		}
		page, next, err := audit.List(as(admin), st, audit.Query{PageSize: 3, PageToken: ""})
		if err != nil || len(page) != 3 || next == "" {
			t.Fatalf("first page: %d, next %q, %v", len(page), next, err)
		}
		rest, next2, err := audit.List(as(admin), st, audit.Query{PageSize: 3, PageToken: next})
		if err != nil || len(rest) != 2 || next2 != "" || rest[0].ID != all[3].ID {
			t.Fatalf("second page: %+v, next %q, %v", rest, next2, err)
		}
		// A member sees only what others did about their tokens.
		mine, _, err := audit.List(as(member), st, audit.Query{PageSize: 0, PageToken: ""})
		if err != nil || len(mine) != 1 || mine[0].ID != leak.ID {
			t.Fatalf("member: %+v, %v; want the leak report alone", mine, err)
		}
		for _, tc := range []struct {
			name      string
			ctx       context.Context
			size      int
			pageToken string
			want      fault.Code
		}{
			{"anonymous", t.Context(), 0, "", fault.Unauthenticated},
			{"no organization", as(authn.Principal{UserID: "u", Admin: true}), 0, "", fault.PermissionDenied},
			{"negative page size", as(admin), -1, "", fault.InvalidArgument},
			{"garbage page token", as(admin), 0, "!!", fault.InvalidArgument},
			{"page token not an id", as(admin), 0, "bm90LWFuLWlk", fault.InvalidArgument},
			{"page token of another org's event", as(admin), 0, pageTokenOf(foreign.ID), fault.InvalidArgument},
		} {
			if _, _, err := audit.List(tc.ctx, st, audit.Query{PageSize: tc.size, PageToken: tc.pageToken}); fault.CodeOf(err) != tc.want {
				t.Errorf("%s: %v, want code %v", tc.name, err, tc.want)
			}
		}
		// A page size over the cap is capped, not refused.
		if list, _, err := audit.List(as(admin), st, audit.Query{PageSize: audit.MaxPageSize + 1, PageToken: ""}); err != nil || len(list) != 5 {
			t.Errorf("oversized page: %d, %v", len(list), err)
		}
	})
}

// pageTokenOf is the page token List gives after the event with id: the
// id, base64url.
func pageTokenOf(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func TestListResponse(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 2, 3, 4, 5, 6, 7000, time.UTC)
	e := store.AuditEvent{ID: "e1", OrgID: "o1", ActorUserID: "u1", ActorEmail: "a@example.com", Action: audit.TokenRevoke,
		TargetID: "t1", ClientIP: "2001:db8::1", UserAgent: "ua/1", CreatedAt: at, Details: map[string]string{"k": "v"}, SubjectUserID: "u2"}
	out := audit.ListResponse([]store.AuditEvent{e}, "next")
	if out.GetNextPageToken() != "next" || len(out.GetEvents()) != 1 {
		t.Fatalf("response %+v", out)
	}
	g := out.GetEvents()[0]
	if g.GetId() != e.ID || g.GetOrganizationId() != e.OrgID || g.GetActorUserId() != e.ActorUserID || g.GetActorEmail() != e.ActorEmail ||
		g.GetAction() != e.Action || g.GetTargetId() != e.TargetID || g.GetClientIp() != e.ClientIP || g.GetUserAgent() != e.UserAgent ||
		!g.GetCreateTime().AsTime().Equal(at) || g.GetDetails()["k"] != "v" || g.GetSubjectUserId() != e.SubjectUserID {
		t.Errorf("event %+v, from %+v", g, e)
	}
}

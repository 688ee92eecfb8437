package audit

import (
	"context"
	"errors"
	"strings"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Lister is what List needs of store.Store.
type Lister interface {
	ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
}

// Audit log pages.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Query selects a page of audit events: filters are ANDed, zero ones
// ignored.
type Query struct {
	PageSize     int
	PageToken    string
	Action       string
	Actor        string
	Since, Until time.Time
}

// Filter bounds: an email is at most 320 characters; action names are short.
const (
	maxActor  = 320
	maxAction = 64
)

// List returns a page of the caller's organization's audit events, newest
// first, and the token of the next page (empty on the last). An
// organization admin lists them all; any other member only the events
// concerning their own tokens that someone else caused (leak reports).
// Events of other organizations, and those of no organization, are never
// in reach.
func List(ctx context.Context, st Lister, q Query) ([]store.AuditEvent, string, error) {
	pageSize, pageToken := q.PageSize, q.PageToken
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return nil, "", fault.New(fault.Unauthenticated, "credentials required: a session, x-api-email and x-api-password, or authorization")
	}
	if p.OrgID == "" || !p.Admin && p.UserID == "" {
		return nil, "", fault.New(fault.PermissionDenied, "the audit log needs an organization admin (a token needs the keymint:admin scope)")
	}
	switch {
	case len(q.Actor) > maxActor:
		return nil, "", fault.New(fault.InvalidArgument, "actor must be at most 320 characters")
	case len(q.Action) > maxAction:
		return nil, "", fault.New(fault.InvalidArgument, "action must be at most 64 characters")
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return nil, "", fault.New(fault.InvalidArgument, "startTime must be before endTime")
	}
	f := store.AuditFilter{OrgID: p.OrgID, Action: q.Action, Actor: strings.TrimSpace(q.Actor), Since: q.Since, Until: q.Until}
	if !p.Admin {
		f.SubjectUserID = p.UserID
	}
	switch {
	case pageSize < 0:
		return nil, "", fault.New(fault.InvalidArgument, "pageSize must not be negative")
	case pageSize == 0:
		f.Limit = DefaultPageSize
	default:
		f.Limit = min(pageSize, MaxPageSize)
	}
	if pageToken != "" {
		after, ok := store.ParsePageToken(pageToken)
		if !ok {
			return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
		f.AfterID = after
	}
	// One extra row tells whether another page follows.
	f.Limit++
	list, err := st.ListAuditEvents(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
	}
	if err != nil {
		return nil, "", fault.StoreFailure(err, "list audit events")
	}
	next := ""
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		next = store.PageToken(list[len(list)-1].ID)
	}
	return list, next, nil
}

// ListResponse is AccountService.ListAuditEvents's answer for a page List
// returned.
func ListResponse(list []store.AuditEvent, next string) *keymintv1.ListAuditEventsResponse {
	out := &keymintv1.ListAuditEventsResponse{Events: make([]*keymintv1.AuditEvent, len(list)), NextPageToken: next}
	for i, e := range list {
		out.Events[i] = ToProto(e)
	}
	return out
}

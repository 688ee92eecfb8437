package accounts

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Audit log pages.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// ListAuditEvents returns a page of the caller's organization's audit
// events, newest first, and the token of the next page (empty on the last).
// An organization admin lists them all; any other member only the events
// concerning their own tokens that someone else caused (leak reports).
// Events of other organizations, and those of no organization, are never
// in reach.
func (s *Service) ListAuditEvents(ctx context.Context, pageSize int, pageToken string) ([]store.AuditEvent, string, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return nil, "", fault.New(fault.Unauthenticated, "credentials required: a session, x-api-email and x-api-password, or authorization")
	}
	if p.OrgID == "" || !p.Admin && p.UserID == "" {
		return nil, "", fault.New(fault.PermissionDenied, "the audit log needs an organization admin (a token needs the keymint:admin scope)")
	}
	f := store.AuditFilter{OrgID: p.OrgID}
	if !p.Admin {
		f.SubjectUserID = p.UserID
	}
	switch {
	case pageSize < 0:
		return nil, "", fault.New(fault.InvalidArgument, "pageSize must not be negative")
	case pageSize == 0:
		f.Limit = defaultAuditPage
	default:
		f.Limit = min(pageSize, maxAuditPage)
	}
	if pageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || uuid.Validate(string(after)) != nil {
			return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
		}
		f.AfterID = string(after)
	}
	// One extra row tells whether another page follows.
	f.Limit++
	list, err := s.store.ListAuditEvents(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fault.New(fault.InvalidArgument, "pageToken is not valid")
	}
	if err != nil {
		return nil, "", fault.StoreFailure(err, "list audit events")
	}
	next := ""
	if len(list) == f.Limit {
		list = list[:f.Limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(list[len(list)-1].ID))
	}
	return list, next, nil
}

// ListAuditEvents lists the caller's organization's audit log.
func (s *Server) ListAuditEvents(ctx context.Context, req *keymintv1.ListAuditEventsRequest) (*keymintv1.ListAuditEventsResponse, error) {
	list, next, err := s.svc.ListAuditEvents(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &keymintv1.ListAuditEventsResponse{Events: make([]*keymintv1.AuditEvent, len(list)), NextPageToken: next}
	for i, e := range list {
		out.Events[i] = &keymintv1.AuditEvent{
			Id:             e.ID,
			OrganizationId: e.OrgID,
			ActorUserId:    e.ActorUserID,
			ActorEmail:     e.ActorEmail,
			Action:         e.Action,
			TargetId:       e.TargetID,
			ClientIp:       e.ClientIP,
			UserAgent:      e.UserAgent,
			CreateTime:     timestamppb.New(e.CreatedAt),
			Details:        e.Details,
			SubjectUserId:  e.SubjectUserID,
		}
	}
	return out, nil
}

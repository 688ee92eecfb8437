package accounts

import (
	"context"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
)

// ListAuditEvents lists the caller's organization's audit log, filtered by
// action, actor and time (the rules are audit.List's).
func (s *Server) ListAuditEvents(ctx context.Context, req *keymintv1.ListAuditEventsRequest) (*keymintv1.ListAuditEventsResponse, error) {
	q := audit.Query{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(), Action: req.GetAction(), Actor: req.GetActor()}
	if t := req.GetStartTime(); t != nil {
		q.Since = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		q.Until = t.AsTime()
	}
	list, next, err := audit.List(ctx, s.svc.store, q)
	if err != nil {
		return nil, err
	}
	return audit.ListResponse(list, next), nil
}

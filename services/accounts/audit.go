package accounts

import (
	"context"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
)

// ListAuditEvents lists the caller's organization's audit log (the rules
// are audit.List's).
func (s *Server) ListAuditEvents(ctx context.Context, req *keymintv1.ListAuditEventsRequest) (*keymintv1.ListAuditEventsResponse, error) {
	list, next, err := audit.List(ctx, s.svc.store, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return audit.ListResponse(list, next), nil
}

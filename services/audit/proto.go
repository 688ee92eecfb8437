package audit

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/store"
)

// ToProto is an event's API form (ListAuditEvents, GetTokenHistory).
func ToProto(e store.AuditEvent) *keymintv1.AuditEvent {
	return &keymintv1.AuditEvent{
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

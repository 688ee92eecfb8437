package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/events"
	"github.com/keymint/keymint/services/fault"
	"github.com/keymint/keymint/services/store"
)

// Admin API bounds (README's configuration table).
const (
	DefaultMaxEndpoints  = 10
	MaxDescriptionLength = 256
	maxDeliveryPage      = 100
	defaultDeliveryPage  = 50
)

// AdminStore is what the admin API needs of store.Store.
type AdminStore interface {
	CreateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint, maxPerOrg int) error
	GetWebhookEndpoint(ctx context.Context, orgID, id string) (store.WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, orgID string) ([]store.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, orgID, id string) error
	ListWebhookDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.WebhookDelivery, error)
	ReplayWebhookDelivery(ctx context.Context, orgID string, id int64, now time.Time) (store.WebhookDelivery, error)
}

// ServerConfig configures the admin API.
type ServerConfig struct {
	Store AdminStore
	// Sealer seals new secrets; nil means webhooks are not configured
	// (no webhook key), and creating one is FailedPrecondition.
	Sealer *Sealer
	Guard  Guard
	Audit  *audit.Recorder
	Logger *slog.Logger
	Now    func() time.Time
	// MaxEndpoints bounds an organization's endpoints; zero is
	// DefaultMaxEndpoints.
	MaxEndpoints int
}

// Server is keymint.v1.WebhookService.
type Server struct {
	keymintv1.UnimplementedWebhookServiceServer
	cfg ServerConfig
}

// NewServer returns the admin API.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEndpoints <= 0 {
		cfg.MaxEndpoints = DefaultMaxEndpoints
	}
	return &Server{cfg: cfg}
}

func requireAdmin(ctx context.Context) (authn.Principal, error) {
	p, ok := authn.PrincipalFrom(ctx)
	if !ok {
		return p, fault.New(fault.Unauthenticated, "credentials required: a session, x-api-email and x-api-password, or authorization")
	}
	if !p.Admin || p.OrgID == "" {
		return p, fault.New(fault.PermissionDenied, "managing webhooks needs an organization admin (a token needs the keymint:admin scope)")
	}
	return p, nil
}

var errEndpointNotFound = fault.New(fault.NotFound, "webhook not found")

// CreateWebhook registers an endpoint and reveals its secret once.
func (s *Server) CreateWebhook(ctx context.Context, req *keymintv1.CreateWebhookRequest) (*keymintv1.CreateWebhookResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if s.cfg.Sealer == nil {
		return nil, fault.New(fault.FailedPrecondition, "webhooks are not configured on this server (no webhook key)")
	}
	if req.GetUrl() == "" {
		return nil, fault.New(fault.InvalidArgument, "url is required")
	}
	if _, err := s.cfg.Guard.CheckURL(ctx, req.GetUrl()); err != nil {
		return nil, fault.New(fault.InvalidArgument, err.Error())
	}
	if !utf8.ValidString(req.GetDescription()) || len(req.GetDescription()) > MaxDescriptionLength {
		return nil, fault.Newf(fault.InvalidArgument, "description must be UTF-8 of at most %d bytes", MaxDescriptionLength)
	}
	types, err := eventTypes(req.GetEventTypes())
	if err != nil {
		return nil, err
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "internal error")
	}
	e := store.WebhookEndpoint{ID: uuid.NewString(), OrgID: p.OrgID, URL: req.GetUrl(), Description: req.GetDescription(),
		EventTypes: types, Enabled: true, CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if e.Secret, err = s.cfg.Sealer.Seal(secret, e.ID); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "internal error")
	}
	err = s.cfg.Store.CreateWebhookEndpoint(ctx, e, s.cfg.MaxEndpoints)
	if errors.Is(err, store.ErrConflict) {
		return nil, fault.Newf(fault.FailedPrecondition, "the organization has %d webhooks already, the most it may have", s.cfg.MaxEndpoints)
	}
	if err != nil {
		return nil, fault.StoreFailure(err, "create webhook")
	}
	s.cfg.Logger.InfoContext(ctx, "webhook created", "webhook_id", e.ID, "org_id", e.OrgID, "by_user_id", p.UserID)
	s.cfg.Audit.Record(ctx, store.AuditEvent{OrgID: p.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditWebhookCreate, TargetID: e.ID})
	return &keymintv1.CreateWebhookResponse{Webhook: webhookPB(e), Secret: secret}, nil
}

// eventTypes checks and normalizes requested event types: known, sorted,
// unique, at least one.
func eventTypes(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, fault.New(fault.InvalidArgument, `event_types is required: one or more event types, or "*"`)
	}
	if len(in) > len(events.Types)+1 {
		return nil, fault.Newf(fault.InvalidArgument, "at most %d event types", len(events.Types)+1)
	}
	for _, t := range in {
		if !events.Known(t) {
			return nil, fault.Newf(fault.InvalidArgument, "event type %q does not exist", truncate(t, 64))
		}
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ListWebhooks lists the organization's endpoints.
func (s *Server) ListWebhooks(ctx context.Context, _ *keymintv1.ListWebhooksRequest) (*keymintv1.ListWebhooksResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.cfg.Store.ListWebhookEndpoints(ctx, p.OrgID)
	if err != nil {
		return nil, fault.StoreFailure(err, "list webhooks")
	}
	out := &keymintv1.ListWebhooksResponse{Webhooks: make([]*keymintv1.Webhook, len(list))}
	for i, e := range list {
		out.Webhooks[i] = webhookPB(e)
	}
	return out, nil
}

// DeleteWebhook deletes an endpoint.
func (s *Server) DeleteWebhook(ctx context.Context, req *keymintv1.DeleteWebhookRequest) (*keymintv1.DeleteWebhookResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(req.GetId()); err != nil {
		return nil, errEndpointNotFound
	}
	err = s.cfg.Store.DeleteWebhookEndpoint(ctx, p.OrgID, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errEndpointNotFound
	}
	if err != nil {
		return nil, fault.StoreFailure(err, "delete webhook")
	}
	s.cfg.Audit.Record(ctx, store.AuditEvent{OrgID: p.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditWebhookDelete, TargetID: req.GetId()})
	return &keymintv1.DeleteWebhookResponse{}, nil
}

// ListWebhookDeliveries lists one endpoint's deliveries, newest first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *keymintv1.ListWebhookDeliveriesRequest) (*keymintv1.ListWebhookDeliveriesResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(req.GetWebhookId()); err != nil {
		return nil, errEndpointNotFound
	}
	if _, err := s.cfg.Store.GetWebhookEndpoint(ctx, p.OrgID, req.GetWebhookId()); errors.Is(err, store.ErrNotFound) {
		return nil, errEndpointNotFound
	} else if err != nil {
		return nil, fault.StoreFailure(err, "get webhook")
	}
	f := store.DeliveryFilter{OrgID: p.OrgID, EndpointID: req.GetWebhookId()}
	switch n := req.GetPageSize(); {
	case n < 0:
		return nil, fault.New(fault.InvalidArgument, "page_size must not be negative")
	case n == 0:
		f.Limit = defaultDeliveryPage
	default:
		f.Limit = min(int(n), maxDeliveryPage)
	}
	if req.GetPageToken() != "" {
		id, err := strconv.ParseInt(req.GetPageToken(), 10, 64)
		if err != nil || id <= 0 {
			return nil, fault.New(fault.InvalidArgument, "page_token is not one this API returned")
		}
		f.BeforeID = id
	}
	list, err := s.cfg.Store.ListWebhookDeliveries(ctx, f)
	if err != nil {
		return nil, fault.StoreFailure(err, "list webhook deliveries")
	}
	out := &keymintv1.ListWebhookDeliveriesResponse{Deliveries: make([]*keymintv1.WebhookDelivery, len(list))}
	for i, d := range list {
		out.Deliveries[i] = deliveryPB(d)
	}
	if len(list) == f.Limit {
		out.NextPageToken = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	return out, nil
}

// ReplayWebhookDelivery queues a delivery's event again.
func (s *Server) ReplayWebhookDelivery(ctx context.Context, req *keymintv1.ReplayWebhookDeliveryRequest) (*keymintv1.WebhookDelivery, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	notFound := fault.New(fault.NotFound, "webhook delivery not found")
	id, err := strconv.ParseInt(req.GetId(), 10, 64)
	if err != nil || id <= 0 {
		return nil, notFound
	}
	d, err := s.cfg.Store.ReplayWebhookDelivery(ctx, p.OrgID, id, s.cfg.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fault.StoreFailure(err, "replay webhook delivery")
	}
	s.cfg.Audit.Record(ctx, store.AuditEvent{OrgID: p.OrgID, ActorUserID: p.UserID, ActorEmail: p.Email,
		Action: store.AuditWebhookReplay, TargetID: d.EndpointID})
	return deliveryPB(d), nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func webhookPB(e store.WebhookEndpoint) *keymintv1.Webhook {
	return &keymintv1.Webhook{Id: e.ID, Url: e.URL, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled,
		CreateTime: ts(e.CreatedAt), DisableTime: ts(e.DisabledAt), FailingSince: ts(e.FailingSince)}
}

func deliveryPB(d store.WebhookDelivery) *keymintv1.WebhookDelivery {
	out := &keymintv1.WebhookDelivery{Id: fmt.Sprint(d.ID), WebhookId: d.EndpointID, EventId: d.EventID, EventType: d.EventType,
		State: d.State, Attempts: int32(d.Attempts), CreateTime: ts(d.CreatedAt), LastAttemptTime: ts(d.LastAttemptAt),
		LastStatusCode: int32(d.LastStatus), LastError: d.LastError, DoneTime: ts(d.DoneAt)}
	if d.State == store.DeliveryPending {
		out.NextAttemptTime = ts(d.NextAttemptAt)
	}
	if d.Attempts > 0 {
		out.LastLatency = durationpb.New(d.LastLatency)
	}
	return out
}

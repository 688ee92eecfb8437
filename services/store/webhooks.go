package store

import (
	"context"
	"time"
)

// Event is one change that webhook endpoints may subscribe to. It is written
// to the outbox in the same transaction as the change it describes, fanned
// out there to every enabled endpoint of its organization that subscribes to
// its type; with no such endpoint nothing is written at all.
type Event struct {
	// ID is unique and stable across retries and replays: receivers use it
	// (the webhook-id header) to drop duplicates.
	ID    string
	OrgID string
	// Type is the event type, e.g. "token.revoked" (services/events).
	Type string
	// Subject orders delivery: an endpoint receives the events of one
	// subject (a token id) in the order they were written.
	Subject string
	// Payload is the JSON body sent to endpoints; it never holds a secret.
	Payload   []byte
	CreatedAt time.Time
}

// WebhookEndpoint is a URL an organization receives events at.
type WebhookEndpoint struct {
	ID          string
	OrgID       string
	URL         string
	Description string
	// EventTypes are the types delivered (sorted, unique); "*" means all.
	EventTypes []string
	// Secret is the signing secret sealed with the webhook key (AES-GCM);
	// the store never sees it in the clear.
	Secret    []byte
	Enabled   bool
	CreatedAt time.Time
	// DisabledAt is when the endpoint was disabled for failing; zero while
	// enabled.
	DisabledAt time.Time
	// FailingSince is the first failed attempt since the last success; zero
	// while the endpoint is healthy.
	FailingSince time.Time
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event on its way to one endpoint.
type WebhookDelivery struct {
	// ID grows with insertion, which orders one subject's deliveries.
	ID         int64
	EventID    string
	EventType  string
	EndpointID string
	OrgID      string
	Subject    string
	// State is one of the Delivery* constants.
	State    string
	Attempts int
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt time.Time
	CreatedAt     time.Time
	// The last attempt: when, the HTTP status (0: no response), a short
	// error (never a response body), how long it took.
	LastAttemptAt time.Time
	LastStatus    int
	LastError     string
	LastLatency   time.Duration
	// DoneAt is when the delivery was delivered or given up.
	DoneAt time.Time
}

// ClaimedDelivery is a delivery leased to one dispatcher, with what sending
// it needs.
type ClaimedDelivery struct {
	Delivery WebhookDelivery
	Endpoint WebhookEndpoint
	Event    Event
}

// DeliveryAttempt is the outcome of one attempt, for FinishWebhookDelivery.
type DeliveryAttempt struct {
	DeliveryID int64
	At         time.Time
	Status     int
	Error      string
	Latency    time.Duration
	// OK means delivered; otherwise a zero RetryAt gives up (failed) and a
	// set one retries then.
	OK      bool
	RetryAt time.Time
}

// DeliveryFilter selects deliveries for ListWebhookDeliveries: those of
// OrgID, of one endpoint when EndpointID is set, newest first, at most Limit
// (0: no bound), with ids below BeforeID when it is set (paging).
type DeliveryFilter struct {
	OrgID      string
	EndpointID string
	Limit      int
	BeforeID   int64
}

// ExpiryQuery selects tokens for an expiry notice: active (not revoked, not
// rotated), expiring in (After, Until], minted more than MinLifetime before
// their expiry (a token minted inside a warning window gets no warning for
// it), and without the notice Notice recorded. A non-zero Window keeps only
// tokens of organizations whose ExpiryWarnings hold it, or that have none
// when DefaultWindow. At most Limit, soonest first.
type ExpiryQuery struct {
	After, Until  time.Time
	MinLifetime   time.Duration
	Notice        string
	Window        time.Duration
	DefaultWindow bool
	Limit         int
}

// Webhooks is the outbox and webhook part of the store contract.
type Webhooks interface {
	// CreateWebhookEndpoint inserts e unless its org has maxPerOrg endpoints
	// already (ErrConflict). A zero CreatedAt is set to now.
	CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint, maxPerOrg int) error
	// GetWebhookEndpoint returns the endpoint id of org orgID.
	GetWebhookEndpoint(ctx context.Context, orgID, id string) (WebhookEndpoint, error)
	// ListWebhookEndpoints returns an organization's endpoints, oldest first.
	ListWebhookEndpoints(ctx context.Context, orgID string) ([]WebhookEndpoint, error)
	// DeleteWebhookEndpoint deletes the endpoint id of org orgID and its
	// deliveries; ErrNotFound if there is none.
	DeleteWebhookEndpoint(ctx context.Context, orgID, id string) error
	// DisableWebhookEndpoint disables an enabled endpoint at at, gives up
	// its pending deliveries, and writes events (a webhook.disabled notice)
	// in the same transaction. It reports whether it changed anything.
	DisableWebhookEndpoint(ctx context.Context, id string, at time.Time, events ...Event) (bool, error)

	// AppendEvents writes events that belong to no other change (aggregated
	// sign-in throttling) to the outbox.
	AppendEvents(ctx context.Context, events ...Event) error
	// ClaimWebhookDeliveries leases up to limit due deliveries to owner
	// until now+lease: pending, next attempt at or before now, not leased
	// to anyone (or the lease ran out), of an enabled endpoint, and the
	// oldest pending one of its endpoint and subject (so one subject's
	// events go out in order). Concurrent callers never get the same
	// delivery while its lease holds.
	ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ClaimedDelivery, error)
	// FinishWebhookDelivery records an attempt on a delivery owner still
	// leases (ErrConflict if the lease was lost) and the endpoint's health:
	// a success clears FailingSince, a failure sets it if unset. It returns
	// the endpoint's FailingSince afterwards.
	FinishWebhookDelivery(ctx context.Context, owner string, a DeliveryAttempt) (failingSince time.Time, err error)
	// ListWebhookDeliveries returns the deliveries f selects.
	ListWebhookDeliveries(ctx context.Context, f DeliveryFilter) ([]WebhookDelivery, error)
	// ReplayWebhookDelivery queues the event of delivery id (of org orgID)
	// again to the same endpoint, due at now, and returns the new delivery.
	ReplayWebhookDelivery(ctx context.Context, orgID string, id int64, now time.Time) (WebhookDelivery, error)
	// PruneWebhookOutbox deletes deliveries finished before before, events
	// left with no delivery, and expiry notices of tokens that expired
	// before it. It returns how many deliveries it deleted.
	PruneWebhookOutbox(ctx context.Context, before time.Time) (int, error)

	// OrgExpiryWindows returns the distinct ExpiryWarnings of every
	// organization.
	OrgExpiryWindows(ctx context.Context) ([]time.Duration, error)
	// ExpiringTokens returns the tokens q selects.
	ExpiringTokens(ctx context.Context, q ExpiryQuery) ([]Token, error)
	// RecordTokenNotice records notice for token id, once: if the token is
	// still active and the notice is new, it writes the marker and events
	// in one transaction and reports true; otherwise it writes nothing.
	RecordTokenNotice(ctx context.Context, id, notice string, at time.Time, events ...Event) (bool, error)
}

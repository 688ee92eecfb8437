// Package events is keymint's event vocabulary for webhooks: the event
// types, the versioned JSON payload schema and the builders the services
// call before writing an event to the outbox in their store transaction.
// A payload never holds a secret: tokens appear by id and metadata, users by
// id and email.
package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
)

// SchemaVersion is the version of the payload schema below. Additive
// changes (new fields, new types) keep it; anything else raises it.
const SchemaVersion = 1

// Event types. Names are "<object>.<change>", so user.* and
// service_account.* lifecycle events slot in beside these.
const (
	TokenCreated     = "token.created"
	TokenRotated     = "token.rotated"
	TokenRevoked     = "token.revoked"
	TokenLeakRevoked = "token.leak_revoked"
	TokenExpiring    = "token.expiring"
	TokenExpired     = "token.expired"
	// UserPasswordChanged: a user changed their password.
	UserPasswordChanged = "user.password_changed"
	// SigninThrottled aggregates refused sign-in attempts on an
	// organization's accounts over a period, never one per attempt.
	SigninThrottled = "signin.throttled"
	// WebhookDisabled: an endpoint failed for too long and was disabled;
	// the org's other endpoints hear of it.
	WebhookDisabled = "webhook.disabled"
	// All subscribes an endpoint to every type, present and future.
	All = "*"
)

// Types are the event types an endpoint can subscribe to, besides All.
var Types = []string{TokenCreated, TokenRotated, TokenRevoked, TokenLeakRevoked, TokenExpiring, TokenExpired,
	UserPasswordChanged, SigninThrottled, WebhookDisabled}

// Known reports whether t names an event type (or All).
func Known(t string) bool { return t == All || slices.Contains(Types, t) }

// Envelope is every payload's outer shape (Standard Webhooks' recommended
// type / timestamp / data, plus the id and schema version).
type Envelope struct {
	// ID is the event id, also sent as the webhook-id header.
	ID        string `json:"id"`
	Type      string `json:"type"`
	Version   int    `json:"version"`
	Timestamp string `json:"timestamp"`
	// OrganizationID is the tenant the event belongs to.
	OrganizationID string `json:"organizationId"`
	Data           any    `json:"data"`
}

// Token is a token as payloads show it: no digest, no hint, no secret.
type Token struct {
	ID          string   `json:"id"`
	UserID      string   `json:"userId"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Scopes      []string `json:"scopes"`
	ExternalID  string   `json:"externalId,omitempty"`
	CreatedAt   string   `json:"createdAt"`
	ExpiresAt   string   `json:"expiresAt,omitempty"`
	RevokedAt   string   `json:"revokedAt,omitempty"`
	RotatedToID string   `json:"rotatedToId,omitempty"`
}

// Actor is who caused a change: a user, or a named system actor
// ("leak-report", "scheduler").
type Actor struct {
	UserID string `json:"userId,omitempty"`
	Email  string `json:"email,omitempty"`
	System string `json:"system,omitempty"`
}

// TokenData is the data of the token.* events.
type TokenData struct {
	Token Token  `json:"token"`
	Actor *Actor `json:"actor,omitempty"`
	// Successor is the new token of a token.rotated event, whose token is
	// the old one; GraceEnd is when the old secret stops working.
	Successor *Token `json:"successor,omitempty"`
	GraceEnd  string `json:"graceEnd,omitempty"`
	// Window is the warning window of a token.expiring event, in seconds.
	WindowSeconds int64 `json:"windowSeconds,omitempty"`
}

// UserData is the data of the user.* events.
type UserData struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Actor  *Actor `json:"actor,omitempty"`
}

// ThrottleData is the data of a signin.throttled event: how many attempts
// on which of the org's accounts were refused in [From, To).
type ThrottleData struct {
	From     string          `json:"from"`
	To       string          `json:"to"`
	Accounts []ThrottledUser `json:"accounts"`
}

// ThrottledUser is one account of a signin.throttled event.
type ThrottledUser struct {
	UserID   string `json:"userId"`
	Email    string `json:"email"`
	Attempts int64  `json:"attempts"`
}

// WebhookData is the data of a webhook.disabled event.
type WebhookData struct {
	EndpointID   string `json:"endpointId"`
	URL          string `json:"url"`
	FailingSince string `json:"failingSince"`
}

// New builds an event of type typ about subject (the ordering key: one
// subject's events reach an endpoint in order) with data in the envelope.
func New(orgID, typ, subject string, at time.Time, data any) store.Event {
	id := "msg_" + uuid.NewString()
	body, err := json.Marshal(Envelope{ID: id, Type: typ, Version: SchemaVersion, Timestamp: stamp(at),
		OrganizationID: orgID, Data: data})
	if err != nil {
		// Only the types above are marshalled, and they always encode.
		panic(fmt.Sprintf("encode %s event: %v", typ, err))
	}
	return store.Event{ID: id, OrgID: orgID, Type: typ, Subject: subject, Payload: body, CreatedAt: at}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// TokenOf is t as payloads show it.
func TokenOf(t store.Token) Token {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return Token{ID: t.ID, UserID: t.UserID, Name: t.Name, Description: t.Description, Scopes: scopes,
		ExternalID: t.ExternalID, CreatedAt: stamp(t.CreatedAt), ExpiresAt: stamp(t.ExpiresAt),
		RevokedAt: stamp(t.RevokedAt), RotatedToID: t.RotatedToID}
}

// TokenEvent is a token.* event about t (its subject), caused by actor.
func TokenEvent(typ string, t store.Token, at time.Time, actor *Actor) store.Event {
	return New(t.OrgID, typ, t.ID, at, TokenData{Token: TokenOf(t), Actor: actor})
}

// Rotated is the token.rotated event of old (as it will be stored: rotated
// to successor, its expiry lowered to graceEnd).
func Rotated(old, successor store.Token, graceEnd, at time.Time, actor *Actor) store.Event {
	old.RotatedToID = successor.ID
	if old.ExpiresAt.IsZero() || old.ExpiresAt.After(graceEnd) {
		old.ExpiresAt = graceEnd
	}
	s := TokenOf(successor)
	return New(old.OrgID, TokenRotated, old.ID, at, TokenData{Token: TokenOf(old), Actor: actor, Successor: &s,
		GraceEnd: stamp(graceEnd)})
}

// Expiring is the token.expiring event of t for a warning window.
func Expiring(t store.Token, window time.Duration, at time.Time) store.Event {
	return New(t.OrgID, TokenExpiring, t.ID, at, TokenData{Token: TokenOf(t), WindowSeconds: int64(window / time.Second)})
}

// PasswordChanged is the user.password_changed event of u.
func PasswordChanged(u store.User, at time.Time) store.Event {
	return New(u.OrgID, UserPasswordChanged, u.ID, at, UserData{UserID: u.ID, Email: u.Email,
		Actor: &Actor{UserID: u.ID, Email: u.Email}})
}

// Disabled is the webhook.disabled event of endpoint e.
func Disabled(e store.WebhookEndpoint, failingSince, at time.Time) store.Event {
	return New(e.OrgID, WebhookDisabled, "webhook:"+e.ID, at, WebhookData{EndpointID: e.ID, URL: e.URL,
		FailingSince: stamp(failingSince)})
}

// Throttled is the signin.throttled event of an org over [from, to).
func Throttled(orgID string, from, to time.Time, accounts []ThrottledUser) store.Event {
	return New(orgID, SigninThrottled, "signin:"+orgID, to, ThrottleData{From: stamp(from), To: stamp(to), Accounts: accounts})
}

package store

import (
	"context"
	"time"
)

func (t *timeoutStore) CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint, maxPerOrg int) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.CreateWebhookEndpoint(ctx, e, maxPerOrg)
}

func (t *timeoutStore) GetWebhookEndpoint(ctx context.Context, orgID, id string) (WebhookEndpoint, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.GetWebhookEndpoint(ctx, orgID, id)
}

func (t *timeoutStore) ListWebhookEndpoints(ctx context.Context, orgID string) ([]WebhookEndpoint, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListWebhookEndpoints(ctx, orgID)
}

func (t *timeoutStore) DeleteWebhookEndpoint(ctx context.Context, orgID, id string) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DeleteWebhookEndpoint(ctx, orgID, id)
}

func (t *timeoutStore) DisableWebhookEndpoint(ctx context.Context, id string, at time.Time, events ...Event) (bool, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.DisableWebhookEndpoint(ctx, id, at, events...)
}

func (t *timeoutStore) AppendEvents(ctx context.Context, events ...Event) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.AppendEvents(ctx, events...)
}

func (t *timeoutStore) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ClaimedDelivery, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ClaimWebhookDeliveries(ctx, owner, now, lease, limit)
}

func (t *timeoutStore) FinishWebhookDelivery(ctx context.Context, owner string, a DeliveryAttempt) (time.Time, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.FinishWebhookDelivery(ctx, owner, a)
}

func (t *timeoutStore) ListWebhookDeliveries(ctx context.Context, f DeliveryFilter) ([]WebhookDelivery, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ListWebhookDeliveries(ctx, f)
}

func (t *timeoutStore) ReplayWebhookDelivery(ctx context.Context, orgID string, id int64, now time.Time) (WebhookDelivery, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ReplayWebhookDelivery(ctx, orgID, id, now)
}

func (t *timeoutStore) PruneWebhookOutbox(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.PruneWebhookOutbox(ctx, before)
}

func (t *timeoutStore) OrgExpiryWindows(ctx context.Context) ([]time.Duration, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.OrgExpiryWindows(ctx)
}

func (t *timeoutStore) ExpiringTokens(ctx context.Context, q ExpiryQuery) ([]Token, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.ExpiringTokens(ctx, q)
}

func (t *timeoutStore) RecordTokenNotice(ctx context.Context, id, notice string, at time.Time, events ...Event) (bool, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.s.RecordTokenNotice(ctx, id, notice, at, events...)
}

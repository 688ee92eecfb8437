package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keymint/keymint/services/store"
)

// subscribed is the condition, over webhook_endpoints w, that w receives
// events of org $1 and type $2.
const subscribed = `w.org_id = $1 AND w.enabled AND w.event_types && ARRAY[$2::text, '*']`

// insertEvents writes events to the outbox inside tx: each event with one
// delivery per subscribed endpoint, nothing for an event no endpoint wants.
// Callers write the change first, so its row locks order the events of one
// token by commit.
func insertEvents(ctx context.Context, tx execer, events []store.Event) error {
	for _, e := range events {
		created := orNow(e.CreatedAt)
		tag, err := tx.Exec(ctx,
			`INSERT INTO webhook_events (id, org_id, type, subject, payload, created_at)
			 SELECT $3, $1, $2, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE `+subscribed+`)`,
			e.OrgID, e.Type, e.ID, e.Subject, string(e.Payload), created)
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, mapErr(err))
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO webhook_deliveries (event_id, endpoint_id, org_id, subject, created_at, next_attempt_at)
			 SELECT $3, w.id, $1, $4, $5, $5 FROM webhook_endpoints w WHERE `+subscribed+` ORDER BY w.id`,
			e.OrgID, e.Type, e.ID, e.Subject, created); err != nil {
			return fmt.Errorf("insert deliveries of event %s: %w", e.ID, mapErr(err))
		}
	}
	return nil
}

// inTx runs fn in a transaction and commits it.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return nil
}

// AppendEvents writes events to the outbox in one transaction.
func (s *Store) AppendEvents(ctx context.Context, events ...store.Event) error {
	return s.inTx(ctx, "append events", func(tx pgx.Tx) error { return insertEvents(ctx, tx, events) })
}

const endpointColumns = `id, org_id, url, description, event_types, secret, enabled, created_at, disabled_at, failing_since`

// CreateWebhookEndpoint inserts e unless its org has maxPerOrg endpoints;
// the organization's row lock makes concurrent creations count in turn.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint, maxPerOrg int) error {
	return s.inTx(ctx, "create webhook endpoint "+e.ID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, e.OrgID); err != nil {
			return mapErr(err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE org_id = $1`, e.OrgID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPerOrg {
			return store.ErrConflict
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.ID, e.OrgID, e.URL, e.Description, nonNil(e.EventTypes), e.Secret, e.Enabled, orNow(e.CreatedAt),
			nullTime(e.DisabledAt), nullTime(e.FailingSince))
		return mapErr(err)
	})
}

func scanEndpoint(row pgx.Row) (store.WebhookEndpoint, error) {
	var (
		e                        store.WebhookEndpoint
		disabledAt, failingSince *time.Time
	)
	if err := row.Scan(&e.ID, &e.OrgID, &e.URL, &e.Description, &e.EventTypes, &e.Secret, &e.Enabled, &e.CreatedAt,
		&disabledAt, &failingSince); err != nil {
		return store.WebhookEndpoint{}, mapErr(err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.DisabledAt, e.FailingSince = fromNull(disabledAt), fromNull(failingSince)
	return e, nil
}

// GetWebhookEndpoint returns one endpoint of an organization.
func (s *Store) GetWebhookEndpoint(ctx context.Context, orgID, id string) (store.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx,
		`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE org_id = $1 AND id = $2`, orgID, id))
	if err != nil {
		return store.WebhookEndpoint{}, fmt.Errorf("get webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// ListWebhookEndpoints returns an organization's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]store.WebhookEndpoint, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	var out []store.WebhookEndpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return out, nil
}

// DeleteWebhookEndpoint deletes an endpoint; its deliveries go with it.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, orgID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// DisableWebhookEndpoint disables an enabled endpoint and gives up its
// pending deliveries, with events, in one transaction.
func (s *Store) DisableWebhookEndpoint(ctx context.Context, id string, at time.Time, events ...store.Event) (bool, error) {
	changed := false
	err := s.inTx(ctx, "disable webhook endpoint "+id, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE webhook_endpoints SET enabled = false, disabled_at = $2 WHERE id = $1 AND enabled`, id, at.UTC())
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		changed = true
		if _, err := tx.Exec(ctx,
			`UPDATE webhook_deliveries SET state = 'failed', done_at = $2, lease_owner = '', lease_until = NULL,
			        last_error = 'endpoint disabled'
			 WHERE endpoint_id = $1 AND state = 'pending'`, id, at.UTC()); err != nil {
			return mapErr(err)
		}
		return insertEvents(ctx, tx, events)
	})
	return changed, err
}

const deliveryColumns = `d.id, d.event_id, ev.type, d.endpoint_id, d.org_id, d.subject, d.state, d.attempts,
	d.next_attempt_at, d.created_at, d.last_attempt_at, d.last_status, d.last_error, d.last_latency_us, d.done_at`

func scanDelivery(row pgx.Row, extra ...any) (store.WebhookDelivery, error) {
	var (
		d          store.WebhookDelivery
		latency    int64
		last, done *time.Time
	)
	dest := append([]any{&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.OrgID, &d.Subject, &d.State, &d.Attempts,
		&d.NextAttemptAt, &d.CreatedAt, &last, &d.LastStatus, &d.LastError, &latency, &done}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.WebhookDelivery{}, mapErr(err)
	}
	d.NextAttemptAt, d.CreatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC()
	d.LastAttemptAt, d.DoneAt = fromNull(last), fromNull(done)
	d.LastLatency = time.Duration(latency) * time.Microsecond
	return d, nil
}

// ClaimWebhookDeliveries leases due deliveries to owner. FOR UPDATE SKIP
// LOCKED lets replicas claim side by side without waiting on each other; a
// row another replica leased meanwhile fails the lease condition when it is
// re-checked under the lock, so no delivery is handed out twice.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.ClaimedDelivery, error) {
	rows, err := s.pool.Query(ctx,
		`WITH c AS (
		   SELECT d.id FROM webhook_deliveries d
		   JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled
		   WHERE d.state = 'pending' AND d.next_attempt_at <= $2
		     AND (d.lease_until IS NULL OR d.lease_until <= $2)
		     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
		                     WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject
		                       AND p.state = 'pending' AND p.id < d.id)
		   ORDER BY d.next_attempt_at, d.id LIMIT $4
		   FOR UPDATE OF d SKIP LOCKED)
		 UPDATE webhook_deliveries d SET lease_owner = $1, lease_until = $3 FROM c WHERE d.id = c.id
		 RETURNING d.id`, owner, now.UTC(), now.Add(lease).UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err = s.pool.Query(ctx,
		`SELECT `+deliveryColumns+`, ev.payload, ev.created_at, w.url, w.secret
		 FROM webhook_deliveries d
		 JOIN webhook_events ev ON ev.id = d.event_id
		 JOIN webhook_endpoints w ON w.id = d.endpoint_id
		 WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.ClaimedDelivery
	for rows.Next() {
		var (
			c       store.ClaimedDelivery
			payload string
			evAt    time.Time
		)
		c.Delivery, err = scanDelivery(rows, &payload, &evAt, &c.Endpoint.URL, &c.Endpoint.Secret)
		if err != nil {
			return nil, fmt.Errorf("claim webhook deliveries: %w", err)
		}
		d := c.Delivery
		c.Event = store.Event{ID: d.EventID, OrgID: d.OrgID, Type: d.EventType, Subject: d.Subject,
			Payload: []byte(payload), CreatedAt: evAt.UTC()}
		c.Endpoint.ID, c.Endpoint.OrgID, c.Endpoint.Enabled = d.EndpointID, d.OrgID, true
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return out, nil
}

// FinishWebhookDelivery records an attempt under owner's lease.
func (s *Store) FinishWebhookDelivery(ctx context.Context, owner string, a store.DeliveryAttempt) (time.Time, error) {
	var failing *time.Time
	err := s.inTx(ctx, fmt.Sprintf("finish webhook delivery %d", a.DeliveryID), func(tx pgx.Tx) error {
		state, next, done := store.DeliveryPending, a.RetryAt, (*time.Time)(nil)
		switch {
		case a.OK:
			state, next, done = store.DeliveryDelivered, a.At, nullTime(a.At)
		case a.RetryAt.IsZero():
			state, next, done = store.DeliveryFailed, a.At, nullTime(a.At)
		}
		var endpoint string
		err := tx.QueryRow(ctx,
			`UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, next_attempt_at = $4, done_at = $5,
			        last_attempt_at = $6, last_status = $7, last_error = $8, last_latency_us = $9,
			        lease_owner = '', lease_until = NULL
			 WHERE id = $1 AND lease_owner = $2 AND state = 'pending' RETURNING endpoint_id`,
			a.DeliveryID, owner, state, next.UTC(), done, a.At.UTC(), a.Status, a.Error, a.Latency.Microseconds()).Scan(&endpoint)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		if a.OK {
			_, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, endpoint)
			return err
		}
		err = tx.QueryRow(ctx,
			`UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since`,
			endpoint, a.At.UTC()).Scan(&failing)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // the endpoint is gone
		}
		return err
	})
	return fromNull(failing), err
}

// ListWebhookDeliveries returns an organization's deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.WebhookDelivery, error) {
	var q query
	where := "d.org_id = " + q.arg(f.OrgID)
	if f.EndpointID != "" {
		where += " AND d.endpoint_id = " + q.arg(f.EndpointID)
	}
	if f.BeforeID > 0 {
		where += " AND d.id < " + q.arg(f.BeforeID)
	}
	sql := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
	        WHERE ` + where + ` ORDER BY d.id DESC`
	if f.Limit > 0 {
		sql += " LIMIT " + q.arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// ReplayWebhookDelivery queues a delivery's event to its endpoint again.
func (s *Store) ReplayWebhookDelivery(ctx context.Context, orgID string, id int64, now time.Time) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	err := s.inTx(ctx, fmt.Sprintf("replay webhook delivery %d", id), func(tx pgx.Tx) error {
		var newID int64
		err := tx.QueryRow(ctx,
			`INSERT INTO webhook_deliveries (event_id, endpoint_id, org_id, subject, created_at, next_attempt_at)
			 SELECT event_id, endpoint_id, org_id, subject, $1, $1 FROM webhook_deliveries WHERE org_id = $2 AND id = $3
			 RETURNING id`, now.UTC(), orgID, id).Scan(&newID)
		if err != nil {
			return mapErr(err)
		}
		d, err = scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryColumns+`
			FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = $1`, newID))
		return err
	})
	return d, err
}

// PruneWebhookOutbox deletes finished deliveries, orphaned events and old
// expiry notices.
func (s *Store) PruneWebhookOutbox(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, "prune webhook outbox", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE done_at IS NOT NULL AND done_at < $1`, before.UTC())
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM webhook_events e WHERE e.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)`, before.UTC()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM token_notices WHERE expires_at < $1`, before.UTC())
		return err
	})
	return int(n), err
}

// ExpiringTokens returns active tokens expiring in (After, Until] without
// the notice, from the expiry index.
func (s *Store) ExpiringTokens(ctx context.Context, q store.ExpiryQuery) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+prefixed("t.", tokenColumns)+` FROM tokens t
		 WHERE t.expires_at > $1 AND t.expires_at <= $2 AND t.revoked_at IS NULL AND t.rotated_to_id = ''
		   AND t.expires_at - t.created_at > make_interval(secs => $3::bigint / 1e6)
		   AND NOT EXISTS (SELECT 1 FROM token_notices n WHERE n.token_id = t.id AND n.notice = $4)
		   AND ($6::bigint = 0 OR EXISTS (SELECT 1 FROM organizations o WHERE o.id = t.org_id
		        AND ((cardinality(o.expiry_warnings_s) = 0 AND $7) OR $6::bigint = ANY (o.expiry_warnings_s))))
		 ORDER BY t.expires_at, t.id LIMIT $5`,
		q.After.UTC(), q.Until.UTC(), q.MinLifetime.Microseconds(), q.Notice, q.Limit,
		int64(q.Window/time.Second), q.DefaultWindow)
	if err != nil {
		return nil, fmt.Errorf("expiring tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("expiring tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expiring tokens: %w", err)
	}
	return out, nil
}

// OrgExpiryWindows returns the distinct expiry windows organizations set.
func (s *Store) OrgExpiryWindows(ctx context.Context) ([]time.Duration, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT unnest(expiry_warnings_s) FROM organizations ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("org expiry windows: %w", err)
	}
	secs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("org expiry windows: %w", err)
	}
	out := make([]time.Duration, len(secs))
	for i, s := range secs {
		out[i] = time.Duration(s) * time.Second
	}
	return out, nil
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// RecordTokenNotice records a notice once, with its events, while the
// token is still active. The token's row lock orders the notice's events
// with a concurrent revocation's.
func (s *Store) RecordTokenNotice(ctx context.Context, id, notice string, at time.Time, events ...store.Event) (bool, error) {
	recorded := false
	err := s.inTx(ctx, "record notice "+notice+" of token "+id, func(tx pgx.Tx) error {
		var expires time.Time
		err := tx.QueryRow(ctx,
			`SELECT expires_at FROM tokens
			 WHERE id = $1 AND revoked_at IS NULL AND rotated_to_id = '' AND expires_at IS NOT NULL FOR UPDATE`, id).Scan(&expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO token_notices (token_id, notice, expires_at, created_at) VALUES ($1, $2, $3, $4)
			 ON CONFLICT DO NOTHING`, id, notice, expires, at.UTC())
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		recorded = true
		return insertEvents(ctx, tx, events)
	})
	return recorded, err
}

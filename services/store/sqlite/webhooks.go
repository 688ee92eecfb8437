package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keymint/keymint/services/store"
)

// subscribed is the condition, over webhook_endpoints w, that w receives
// events of org ?1 and type ?2.
const subscribed = `w.org_id = ?1 AND w.enabled = 1
	AND EXISTS (SELECT 1 FROM json_each(w.event_types) WHERE value IN (?2, '*'))`

// insertEvents writes events to the outbox inside tx: each event with one
// delivery per subscribed endpoint, nothing for an event no endpoint wants.
func insertEvents(ctx context.Context, tx execer, events []store.Event) error {
	for _, e := range events {
		created := orNow(e.CreatedAt).UnixMicro()
		res, err := tx.ExecContext(ctx,
			`INSERT INTO webhook_events (id, org_id, type, subject, payload, created_at)
			 SELECT ?3, ?1, ?2, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE `+subscribed+`)`,
			e.OrgID, e.Type, e.ID, e.Subject, string(e.Payload), created)
		if err != nil {
			return fmt.Errorf("insert event %s: %w", e.ID, mapErr(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO webhook_deliveries (event_id, endpoint_id, org_id, subject, created_at, next_attempt_at)
			 SELECT ?3, w.id, ?1, ?4, ?5, ?5 FROM webhook_endpoints w WHERE `+subscribed+` ORDER BY w.id`,
			e.OrgID, e.Type, e.ID, e.Subject, created); err != nil {
			return fmt.Errorf("insert deliveries of event %s: %w", e.ID, mapErr(err))
		}
	}
	return nil
}

// AppendEvents writes events to the outbox in one transaction.
func (s *Store) AppendEvents(ctx context.Context, events ...store.Event) error {
	return s.inTx(ctx, "append events", func(tx *sql.Tx) error { return insertEvents(ctx, tx, events) })
}

// inTx runs fn in a write transaction and commits it.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return nil
}

const endpointColumns = `id, org_id, url, description, event_types, secret, enabled, created_at, disabled_at, failing_since`

// CreateWebhookEndpoint inserts e unless its org has maxPerOrg endpoints.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint, maxPerOrg int) error {
	types, err := jsonList(e.EventTypes)
	if err != nil {
		return fmt.Errorf("create webhook endpoint %s: %w", e.ID, err)
	}
	return s.inTx(ctx, "create webhook endpoint "+e.ID, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE org_id = ?`, e.OrgID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPerOrg {
			return store.ErrConflict
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.OrgID, e.URL, e.Description, types, e.Secret, e.Enabled, orNow(e.CreatedAt).UnixMicro(),
			micros(e.DisabledAt), micros(e.FailingSince))
		return mapErr(err)
	})
}

func scanEndpoint(row scanner) (store.WebhookEndpoint, error) {
	var (
		e                        store.WebhookEndpoint
		types                    string
		created                  int64
		disabledAt, failingSince sql.NullInt64
	)
	if err := row.Scan(&e.ID, &e.OrgID, &e.URL, &e.Description, &types, &e.Secret, &e.Enabled, &created,
		&disabledAt, &failingSince); err != nil {
		return store.WebhookEndpoint{}, mapErr(err)
	}
	if err := json.Unmarshal([]byte(types), &e.EventTypes); err != nil {
		return store.WebhookEndpoint{}, fmt.Errorf("decode event types of endpoint %s: %w", e.ID, err)
	}
	e.CreatedAt = time.UnixMicro(created).UTC()
	e.DisabledAt, e.FailingSince = fromMicros(disabledAt), fromMicros(failingSince)
	return e, nil
}

// GetWebhookEndpoint returns one endpoint of an organization.
func (s *Store) GetWebhookEndpoint(ctx context.Context, orgID, id string) (store.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.r.QueryRowContext(ctx,
		`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE org_id = ? AND id = ?`, orgID, id))
	if err != nil {
		return store.WebhookEndpoint{}, fmt.Errorf("get webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// ListWebhookEndpoints returns an organization's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]store.WebhookEndpoint, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE org_id = ? ORDER BY created_at, id`, orgID)
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
	res, err := s.w.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE org_id = ? AND id = ?`, orgID, id)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// DisableWebhookEndpoint disables an enabled endpoint and gives up its
// pending deliveries, with events, in one transaction.
func (s *Store) DisableWebhookEndpoint(ctx context.Context, id string, at time.Time, events ...store.Event) (bool, error) {
	changed := false
	err := s.inTx(ctx, "disable webhook endpoint "+id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE webhook_endpoints SET enabled = 0, disabled_at = ? WHERE id = ? AND enabled = 1`, at.UnixMicro(), id)
		if err != nil {
			return mapErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		changed = true
		if _, err := tx.ExecContext(ctx,
			`UPDATE webhook_deliveries SET state = 'failed', done_at = ?, lease_owner = '', lease_until = NULL,
			        last_error = 'endpoint disabled'
			 WHERE endpoint_id = ? AND state = 'pending'`, at.UnixMicro(), id); err != nil {
			return mapErr(err)
		}
		return insertEvents(ctx, tx, events)
	})
	return changed, err
}

const deliveryColumns = `d.id, d.event_id, ev.type, d.endpoint_id, d.org_id, d.subject, d.state, d.attempts,
	d.next_attempt_at, d.created_at, d.last_attempt_at, d.last_status, d.last_error, d.last_latency_us, d.done_at`

func scanDelivery(row scanner, extra ...any) (store.WebhookDelivery, error) {
	var (
		d                      store.WebhookDelivery
		next, created, latency int64
		last, done             sql.NullInt64
	)
	dest := append([]any{&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.OrgID, &d.Subject, &d.State, &d.Attempts,
		&next, &created, &last, &d.LastStatus, &d.LastError, &latency, &done}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.WebhookDelivery{}, mapErr(err)
	}
	d.NextAttemptAt, d.CreatedAt = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC()
	d.LastAttemptAt, d.DoneAt = fromMicros(last), fromMicros(done)
	d.LastLatency = time.Duration(latency) * time.Microsecond
	return d, nil
}

// ClaimWebhookDeliveries leases due deliveries to owner. SQLite has one
// writer, so selecting and leasing in one transaction cannot race another
// claimer.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.ClaimedDelivery, error) {
	var out []store.ClaimedDelivery
	err := s.inTx(ctx, "claim webhook deliveries", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`SELECT `+deliveryColumns+`, ev.payload, ev.created_at, w.url, w.secret
			 FROM webhook_deliveries d
			 JOIN webhook_events ev ON ev.id = d.event_id
			 JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled = 1
			 WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
			   AND (d.lease_until IS NULL OR d.lease_until <= ?1)
			   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
			                   WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject
			                     AND p.state = 'pending' AND p.id < d.id)
			 ORDER BY d.next_attempt_at, d.id LIMIT ?2`, now.UnixMicro(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				c       store.ClaimedDelivery
				payload string
				evAt    int64
			)
			c.Delivery, err = scanDelivery(rows, &payload, &evAt, &c.Endpoint.URL, &c.Endpoint.Secret)
			if err != nil {
				return err
			}
			d := c.Delivery
			c.Event = store.Event{ID: d.EventID, OrgID: d.OrgID, Type: d.EventType, Subject: d.Subject,
				Payload: []byte(payload), CreatedAt: time.UnixMicro(evAt).UTC()}
			c.Endpoint.ID, c.Endpoint.OrgID, c.Endpoint.Enabled = d.EndpointID, d.OrgID, true
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?`,
				owner, now.Add(lease).UnixMicro(), c.Delivery.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishWebhookDelivery records an attempt under owner's lease.
func (s *Store) FinishWebhookDelivery(ctx context.Context, owner string, a store.DeliveryAttempt) (time.Time, error) {
	var failing sql.NullInt64
	err := s.inTx(ctx, fmt.Sprintf("finish webhook delivery %d", a.DeliveryID), func(tx *sql.Tx) error {
		state, next, done := store.DeliveryPending, a.RetryAt, sql.NullInt64{}
		switch {
		case a.OK:
			state, next, done = store.DeliveryDelivered, a.At, micros(a.At)
		case a.RetryAt.IsZero():
			state, next, done = store.DeliveryFailed, a.At, micros(a.At)
		}
		var endpoint string
		err := tx.QueryRowContext(ctx,
			`UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, done_at = ?,
			        last_attempt_at = ?, last_status = ?, last_error = ?, last_latency_us = ?,
			        lease_owner = '', lease_until = NULL
			 WHERE id = ? AND lease_owner = ? AND state = 'pending' RETURNING endpoint_id`,
			state, next.UnixMicro(), done, a.At.UnixMicro(), a.Status, a.Error, a.Latency.Microseconds(),
			a.DeliveryID, owner).Scan(&endpoint)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		if a.OK {
			_, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?`, endpoint)
			return err
		}
		return mapNoRows(tx.QueryRowContext(ctx,
			`UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ? RETURNING failing_since`,
			a.At.UnixMicro(), endpoint).Scan(&failing))
	})
	return fromMicros(failing), err
}

// mapNoRows treats "no row" as success: the row (an endpoint) is gone.
func mapNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

// ListWebhookDeliveries returns an organization's deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.WebhookDelivery, error) {
	where, args := "d.org_id = ?", []any{f.OrgID}
	if f.EndpointID != "" {
		where += " AND d.endpoint_id = ?"
		args = append(args, f.EndpointID)
	}
	if f.BeforeID > 0 {
		where += " AND d.id < ?"
		args = append(args, f.BeforeID)
	}
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
	      WHERE ` + where + ` ORDER BY d.id DESC`
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
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
	err := s.inTx(ctx, fmt.Sprintf("replay webhook delivery %d", id), func(tx *sql.Tx) error {
		var newID int64
		err := tx.QueryRowContext(ctx,
			`INSERT INTO webhook_deliveries (event_id, endpoint_id, org_id, subject, created_at, next_attempt_at)
			 SELECT event_id, endpoint_id, org_id, subject, ?1, ?1 FROM webhook_deliveries WHERE org_id = ?2 AND id = ?3
			 RETURNING id`, now.UnixMicro(), orgID, id).Scan(&newID)
		if err != nil {
			return mapErr(err)
		}
		d, err = scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryColumns+`
			FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = ?`, newID))
		return err
	})
	return d, err
}

// PruneWebhookOutbox deletes finished deliveries, orphaned events and old
// expiry notices.
func (s *Store) PruneWebhookOutbox(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, "prune webhook outbox", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE done_at IS NOT NULL AND done_at < ?`, before.UnixMicro())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE created_at < ?
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)`, before.UnixMicro()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM token_notices WHERE expires_at < ?`, before.UnixMicro())
		return err
	})
	return int(n), err
}

// ExpiringTokens returns active tokens expiring in (After, Until] without
// the notice, from the expiry index.
func (s *Store) ExpiringTokens(ctx context.Context, q store.ExpiryQuery) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+prefixed("t.", tokenColumns)+` FROM tokens t
		 WHERE t.expires_at > ?1 AND t.expires_at <= ?2 AND t.revoked_at IS NULL AND t.rotated_to_id = ''
		   AND t.expires_at - t.created_at > ?3
		   AND NOT EXISTS (SELECT 1 FROM token_notices n WHERE n.token_id = t.id AND n.notice = ?4)
		   AND (?6 = 0 OR EXISTS (SELECT 1 FROM organizations o WHERE o.id = t.org_id
		        AND ((o.expiry_warnings_s = '[]' AND ?7) OR EXISTS (SELECT 1 FROM json_each(o.expiry_warnings_s) WHERE value = ?6))))
		 ORDER BY t.expires_at, t.id LIMIT ?5`,
		q.After.UnixMicro(), q.Until.UnixMicro(), q.MinLifetime.Microseconds(), q.Notice, q.Limit,
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
	rows, err := s.r.QueryContext(ctx,
		`SELECT DISTINCT j.value FROM organizations o, json_each(o.expiry_warnings_s) j ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("org expiry windows: %w", err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var secs int64
		if err := rows.Scan(&secs); err != nil {
			return nil, fmt.Errorf("org expiry windows: %w", err)
		}
		out = append(out, time.Duration(secs)*time.Second)
	}
	return out, rows.Err()
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
// token is still active.
func (s *Store) RecordTokenNotice(ctx context.Context, id, notice string, at time.Time, events ...store.Event) (bool, error) {
	recorded := false
	err := s.inTx(ctx, "record notice "+notice+" of token "+id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO token_notices (token_id, notice, expires_at, created_at)
			 SELECT id, ?2, expires_at, ?3 FROM tokens
			 WHERE id = ?1 AND revoked_at IS NULL AND rotated_to_id = '' AND expires_at IS NOT NULL
			 ON CONFLICT DO NOTHING`, id, notice, at.UnixMicro())
		if err != nil {
			return mapErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		recorded = true
		return insertEvents(ctx, tx, events)
	})
	return recorded, err
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/keymint/keymint/services/store"
)

const auditColumns = `id, org_id, actor_user_id, actor_email, action, target_id, client_ip, user_agent, created_at, details, subject_user_id`

// AppendAuditEvent records e; ErrAlreadyExists if its id is taken.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO audit_events (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.ID, e.OrgID, e.ActorUserID, e.ActorEmail, e.Action, e.TargetID, e.ClientIP, e.UserAgent, orNow(e.CreatedAt), store.EncodeDetails(e.Details), e.SubjectUserID)
	if err != nil {
		return fmt.Errorf("append audit event %s: %w", e.ID, mapErr(err))
	}
	return nil
}

// ListAuditEvents returns one page of an organization's events, newest
// first, ties by id descending. An AfterID that is not an event of f's org
// is ErrNotFound.
func (s *Store) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var q query
	where := "org_id = " + q.arg(f.OrgID)
	if f.SubjectUserID != "" {
		where += " AND subject_user_id = " + q.arg(f.SubjectUserID)
	}
	if f.AfterID != "" {
		// Looked up within the org, so a page token from another org
		// reveals nothing.
		var at time.Time
		err := s.pool.QueryRow(ctx, `SELECT created_at FROM audit_events WHERE org_id = $1 AND id = $2`,
			f.OrgID, f.AfterID).Scan(&at)
		if err != nil {
			return nil, fmt.Errorf("list audit events after %s: %w", f.AfterID, mapErr(err))
		}
		where += fmt.Sprintf(" AND (created_at, id) < (%s, %s)", q.arg(at), q.arg(f.AfterID))
	}
	if f.Action != "" {
		where += " AND action = " + q.arg(f.Action)
	}
	if f.Actor != "" {
		a := q.arg(f.Actor)
		where += " AND (actor_user_id = " + a + " OR actor_email = " + a + ")"
	}
	if len(f.TargetIDs) > 0 {
		where += " AND target_id = ANY(" + q.arg(f.TargetIDs) + ")"
	}
	if !f.Since.IsZero() {
		where += " AND created_at >= " + q.arg(f.Since.UTC())
	}
	if !f.Until.IsZero() {
		where += " AND created_at < " + q.arg(f.Until.UTC())
	}
	sql := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + where + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		sql += " LIMIT " + q.arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var (
			e       store.AuditEvent
			details string
		)
		if err := rows.Scan(&e.ID, &e.OrgID, &e.ActorUserID, &e.ActorEmail, &e.Action, &e.TargetID,
			&e.ClientIP, &e.UserAgent, &e.CreatedAt, &details, &e.SubjectUserID); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		e.CreatedAt = e.CreatedAt.UTC()
		e.Details = store.DecodeDetails(details)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keymint/keymint/services/store"
)

const auditColumns = `id, org_id, actor_user_id, actor_email, action, target_id, client_ip, user_agent, created_at, details, subject_user_id`

// AppendAuditEvent records e; ErrAlreadyExists if its id is taken.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.OrgID, e.ActorUserID, e.ActorEmail, e.Action, e.TargetID, e.ClientIP, e.UserAgent, orNow(e.CreatedAt).UnixMicro(), store.EncodeDetails(e.Details), e.SubjectUserID)
	if err != nil {
		return fmt.Errorf("append audit event %s: %w", e.ID, mapErr(err))
	}
	return nil
}

// ListAuditEvents returns one page of an organization's events, newest
// first, ties by id descending. An AfterID that is not an event of f's org
// is ErrNotFound.
func (s *Store) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	where, args := "org_id = ?", []any{f.OrgID}
	if f.SubjectUserID != "" {
		where += " AND subject_user_id = ?"
		args = append(args, f.SubjectUserID)
	}
	if f.AfterID != "" {
		// Looked up within the org, so a page token from another org
		// reveals nothing.
		var at int64
		err := s.r.QueryRowContext(ctx, `SELECT created_at FROM audit_events WHERE org_id = ? AND id = ?`,
			f.OrgID, f.AfterID).Scan(&at)
		if err != nil {
			return nil, fmt.Errorf("list audit events after %s: %w", f.AfterID, mapErr(err))
		}
		where += " AND (created_at, id) < (?, ?)"
		args = append(args, at, f.AfterID)
	}
	if f.Action != "" {
		where += " AND action = ?"
		args = append(args, f.Action)
	}
	if f.Actor != "" {
		where += " AND (actor_user_id = ? OR actor_email = ?)"
		args = append(args, f.Actor, f.Actor)
	}
	if len(f.TargetIDs) > 0 {
		where += " AND target_id IN (?" + strings.Repeat(", ?", len(f.TargetIDs)-1) + ")"
		for _, id := range f.TargetIDs {
			args = append(args, id)
		}
	}
	if !f.Since.IsZero() {
		where += " AND created_at >= ?"
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where += " AND created_at < ?"
		args = append(args, f.Until.UnixMicro())
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + where + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var (
			e       store.AuditEvent
			created int64
			details string
		)
		if err := rows.Scan(&e.ID, &e.OrgID, &e.ActorUserID, &e.ActorEmail, &e.Action, &e.TargetID,
			&e.ClientIP, &e.UserAgent, &created, &details, &e.SubjectUserID); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		e.CreatedAt = time.UnixMicro(created).UTC()
		e.Details = store.DecodeDetails(details)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

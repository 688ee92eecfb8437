-- +goose Up
-- The audit log: sign-ins, sign-outs, token mints and revocations, password
-- changes. No secret is ever written here. org_id is '' for sign-in failures
-- naming no known account (no tenant's admin can list those); there is no
-- foreign key, so the log outlives what it mentions. Times are INTEGER unix
-- microseconds in UTC like every other table.
CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    actor_user_id TEXT NOT NULL,
    actor_email   TEXT NOT NULL,
    action        TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    client_ip     TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- ListAuditEvents pages through one organization's events, newest first.
CREATE INDEX audit_events_org_created ON audit_events (org_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE audit_events;

-- +goose Up
-- The audit log: sign-ins, sign-outs, token mints and revocations, password
-- changes. No secret is ever written here. org_id is '' for sign-in failures
-- naming no known account (no tenant's admin can list those); there is no
-- foreign key, so the log outlives what it mentions.
CREATE TABLE audit_events (
    id            text COLLATE "C" PRIMARY KEY,
    org_id        text COLLATE "C" NOT NULL,
    actor_user_id text COLLATE "C" NOT NULL,
    actor_email   text NOT NULL,
    action        text NOT NULL,
    target_id     text COLLATE "C" NOT NULL,
    client_ip     text NOT NULL,
    user_agent    text NOT NULL,
    created_at    timestamptz NOT NULL
);

-- ListAuditEvents pages through one organization's events, newest first.
CREATE INDEX audit_events_org_created ON audit_events (org_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE audit_events;
